"""SFT throughput through our recipe (`depthlm_hf.scripts.sft.train`): samples/s, tokens/s, MFU, peak memory.

    python benchmarks/bench_sft_throughput.py                                  # CPU: tiny model, tiny scenes
    python benchmarks/bench_sft_throughput.py --model qwen2.5-vl-3b --steps 20  # one GPU, paper image sizes

`qwen2.5-vl-3b` / `qwen2.5-vl-7b` are the real architectures built from their published configs with random
weights (no download), saved with a `DepthLMProcessor` (Qwen2-VL image processor at its defaults, the
tiny offline tokenizer: text is short, image tokens dominate), then trained on synthetic indoor scenes
with the paper's inputs: unified focal 1000 px, crops 1000-1400 x 700-1200 px (about 1,000 image tokens
per sample), bf16, activation checkpointing, SDPA attention.

Variants (each a separate run of `--steps` steps on the same rows; the first-step loss is printed so
that a lever that changes the maths shows up): the baseline micro-batch, a larger micro-batch, and the
vision tower frozen. MFU counts model FLOPs only (no recomputation): 6 x parameters x tokens for the
text transformer and lm_head (per text token) and the vision tower (per patch), plus
12 x layers x hidden x sequence^2 (causal: half) for text attention (vision attention left out),
over the accelerator's dense bf16 peak (H100/H200: 989 TFLOP/s). CPU runs report no MFU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}

TEXT_CONFIGS = {
    "qwen2.5-vl-3b": {
        "hidden_size": 2048,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "intermediate_size": 11008,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "qwen2.5-vl-7b": {
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}
VISION_CONFIG = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "in_chans": 3,
}


def real_config(name: str, tokenizer) -> Qwen2_5_VLConfig:
    """The published Qwen2.5-VL-3B/7B architecture, with special-token ids taken from `tokenizer`."""
    from depthlm_hf.models.tiny import SPECIAL_TOKENS

    text = TEXT_CONFIGS[name]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text_config = {
        **text,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {**VISION_CONFIG, "out_hidden_size": text["hidden_size"]}
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=text["tie_word_embeddings"],
    )


def save_random_model(name: str, folder: Path, dtype: torch.dtype) -> None:
    """Random weights of the real architecture + a DepthLMProcessor (paper preset), saved to `folder`."""
    from depthlm_hf.models.tiny import tiny_processor

    processor = tiny_processor(min_pixels=3136, max_pixels=12845056)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(real_config(name, processor.tokenizer)).to(dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the vision tower, the text transformer body, and the output projection (lm_head)."""
    vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    untied_head = 0 if head is embed else head.numel()
    return {
        "vision": vision,
        "text_body": total - vision - embed.numel() - untied_head,
        "lm_head": head.numel(),
    }


def model_flops(counts: dict[str, int], config, text_tokens: float, patches: float, sequences: float) -> float:
    """Training model FLOPs (forward + backward) of a step, see the module docstring."""
    text = config.text_config
    seq = text_tokens / max(sequences, 1.0)
    attention = 12 * text.num_hidden_layers * text.hidden_size * seq * seq / 2 * sequences
    dense = 6 * (counts["text_body"] + counts["lm_head"]) * text_tokens + 6 * counts["vision"] * patches
    return dense + attention


class Meter(TrainerCallback):
    """Times steps after `warmup` steps and counts text tokens and image patches of every batch."""

    def __init__(self, warmup: int = 2) -> None:
        self.warmup, self.step_times, self.losses = warmup, [], []
        self.tokens = self.patches = self.sequences = 0.0
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if state.global_step > self.warmup:
            self.step_times.append(time.perf_counter() - self._start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def run_variant(model_path: str, args, micro_batch: int, freeze_vision: bool) -> dict:
    from depthlm_hf.scripts import sft
    from depthlm_hf.training.trainers import AnswerOnlyCollator

    gpu = torch.cuda.is_available()
    config = {
        "model_name_or_path": model_path,
        "synthetic": "indoor" if gpu else "ground",
        "synthetic_scenes": 64,
        "tasks": ["distance"],
        "max_steps": args.steps,
        "per_device_train_batch_size": micro_batch,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-5,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "dataloader_num_workers": args.workers,
        "seed": 0,
        "output_dir": tempfile.mkdtemp(prefix="bench-sft-"),
    }
    if gpu:  # the paper's inputs and settings
        config.update(
            bf16=True,
            dtype="bfloat16",
            activation_checkpointing=True,
            attn_implementation=args.attn_implementation,
            unified_focal_length=1000.0,
            synthetic_image_size=[1600, 1200],
            crop_width=[1000, 1400],
            crop_height=[700, 1200],
        )
    else:  # the tiny CPU recipe (recipes/tiny/sft/config_synthetic.yaml)
        config.update(
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            unified_focal_length=200.0,
            crop_width=None,
            crop_height=None,
        )
    path = Path(config["output_dir"]) / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["--config", str(path)]
    script_args, training_args, model_args = sft.make_parser().parse_args_and_config(argv)
    meter = Meter()

    class Hooks(TrainerCallback):
        def on_train_begin(self, args_, state, control, model=None, **kwargs):
            if freeze_vision:
                for name, param in model.named_parameters():
                    if "visual" in name:
                        param.requires_grad_(False)

    original = AnswerOnlyCollator.__call__

    def patched(self, examples, *a, **k):
        batch = original(self, examples, *a, **k)
        if meter._start is not None:
            meter.tokens += float(batch["attention_mask"].sum())
            meter.patches += float(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0.0
            meter.sequences += float(batch["input_ids"].shape[0])
        return batch

    AnswerOnlyCollator.__call__ = patched
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    try:
        trainer = sft.train(script_args, training_args, model_args, callbacks=[meter, Hooks()])
    finally:
        AnswerOnlyCollator.__call__ = original
    timed_steps = len(meter.step_times)
    seconds = sum(meter.step_times)
    # The collator counts every batch; scale the counts to the timed steps.
    per_step = 1.0 / max(args.steps, 1)
    samples = micro_batch * timed_steps
    tokens, patches = meter.tokens * per_step * timed_steps, meter.patches * per_step * timed_steps
    counts = parameter_counts(trainer.model)
    flops = model_flops(counts, trainer.model.config, tokens, patches, samples)
    device = torch.cuda.get_device_name(0) if gpu else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device), None)
    if gpu:
        memory = torch.cuda.max_memory_allocated() / 2**30
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "micro_batch": micro_batch,
        "freeze_vision": freeze_vision,
        "timed_steps": timed_steps,
        "samples_per_second": samples / seconds if seconds else None,
        "tokens_per_second": tokens / seconds if seconds else None,
        "image_tokens_per_sample": patches / 4 / samples if samples else None,
        "achieved_tflops": flops / seconds / 1e12 if seconds else None,
        "mfu": flops / seconds / peak if (seconds and peak) else None,
        "peak_memory_gb": memory,
        "first_step_loss": meter.losses[0] if meter.losses else None,
        "parameters": counts,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", *TEXT_CONFIGS])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--micro_batch", type=int, default=None, help="baseline micro-batch (GPU 10, CPU 4)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--attn_implementation", default="sdpa")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    base = args.micro_batch or (10 if gpu else 4)
    with tempfile.TemporaryDirectory() as folder:
        model_path = "tiny"
        if args.model != "tiny":
            save_random_model(args.model, Path(folder), torch.bfloat16 if gpu else torch.float32)
            model_path = folder
        variants = [
            run_variant(model_path, args, base, freeze_vision=False),
            run_variant(model_path, args, 2 * base, freeze_vision=False),
            run_variant(model_path, args, base, freeze_vision=True),
        ]
    baseline = variants[0]["samples_per_second"]
    for v in variants:
        v["speedup_vs_baseline"] = v["samples_per_second"] / baseline if baseline else None
        print(
            f"micro-batch {v['micro_batch']:3d} freeze_vision={v['freeze_vision']!s:5}: "
            f"{v['samples_per_second']:.2f} samples/s, {v['tokens_per_second']:.0f} tokens/s, "
            f"MFU {v['mfu']}, peak {v['peak_memory_gb']:.2f} GB, first loss {v['first_step_loss']}"
        )
    figures = {
        "scale": "one GPU, paper image sizes" if gpu else "CPU, tiny model (GPU rows pending)",
        "model": args.model
        if args.model != "tiny"
        else "tiny Qwen2.5-VL (depthlm_hf.models.tiny), ground scenes 224x168",
        "steps": args.steps,
        "samples_per_second": variants[0]["samples_per_second"],
        "tokens_per_second": variants[0]["tokens_per_second"],
        "mfu": variants[0]["mfu"],
        "peak_memory_gb": variants[0]["peak_memory_gb"],
        "speedup_vs_baseline": max(v["speedup_vs_baseline"] or 0 for v in variants),
        "flop_count": "6 (N_text_body + N_lm_head) tokens + 6 N_vision patches + 6 L d s^2 (causal)",
        "variants": variants,
    }
    write_result("sft_throughput", figures)
    return figures


if __name__ == "__main__":
    main()
