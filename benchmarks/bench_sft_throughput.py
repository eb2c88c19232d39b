"""SFT throughput through our recipe's data path and model: samples/s, tokens/s, MFU, CPU time, peak memory.

    python benchmarks/bench_sft_throughput.py                                        # CPU: tiny model, tiny scenes
    python benchmarks/bench_sft_throughput.py --model qwen2.5-vl-3b --dataset J:ROOT # one GPU, real image sizes
    python benchmarks/bench_sft_throughput.py --model qwen2.5-vl-3b --shrink          # CPU dry run of the GPU path

`qwen2.5-vl-3b` / `qwen2.5-vl-7b` are the published architectures with random weights (no download; `--shrink`
cuts them to 2 layers of width 64 for a CPU dry run), saved with a `DepthLMProcessor` (Qwen2-VL image processor
at its real-size defaults, the tiny offline tokenizer: text is short, image tokens dominate). The rows come from
`depthlm_hf.training.setup.build_datasets` and the trainer's own data loader (sampler, collator, workers), as
`depthlm sft` builds them: unified focal 1000 px, crops 1000-1400 x 700-1200 (iBims-1 with `--dataset`, else
synthetic indoor scenes), bf16, gradient checkpointing, SDPA.

Variants share one model and optimizer and run interleaved in one process, `--steps` steps per variant per
round, rotating which goes first: `baseline` (stock vision attention), `vision_attention` (one SDPA call per
window length and block), `micro_batch` (the same with twice the micro-batch). A step is: the next batch from
the data loader (data loading inside step time), forward, backward, gradient clipping, optimizer step. One
untimed round warms up every variant; afterwards every batch is timed and its tokens counted exactly. No model is
saved. Results are rewritten after every round (`benchmarks/results/<--name>.json`), so a run cut short keeps them.
MFU counts model FLOPs only (no recomputation): 6 x parameters x tokens for the text transformer and lm_head (per
text token) and the vision tower (per patch), plus 12 x layers x hidden x sequence^2 / 2 for causal text
attention (vision attention left out), over the dense bf16 peak (H100/H200: 989 TFLOP/s).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from _models import PEAK_BF16_FLOPS, TEXT_CONFIGS, parameter_counts, save_random_model  # noqa: E402

from depthlm_hf.models import vision_attention  # noqa: E402


def recipe(model_path: str, args, gpu: bool) -> dict:
    """The `depthlm sft` configuration of the run (as a recipe YAML would hold it)."""
    config = {
        "model_name_or_path": model_path,
        "tasks": ["distance"],
        "max_steps": 1_000_000,
        "per_device_train_batch_size": args.micro_batch,
        "dataloader_num_workers": args.workers,
        "rows_per_image": args.rows_per_image,
        "seed": 0,
        "output_dir": tempfile.mkdtemp(prefix="bench-sft-"),
        "report_to": "none",
        "attn_implementation": "sdpa",
        "gradient_checkpointing": gpu,
        "bf16": gpu,
        "use_cpu": not gpu,
    }
    if args.dataset:
        config["dataset"] = [args.dataset]
    else:
        config.update(synthetic="indoor" if args.model != "tiny" else "ground", synthetic_scenes=16)
    if args.model != "tiny" and not args.shrink:  # the paper's inputs
        config.update(dtype="bfloat16", unified_focal_length=1000.0, crop_width=[1000, 1400], crop_height=[700, 1200])
        if not args.dataset:
            config["synthetic_image_size"] = [1600, 1200]
    else:  # small images: a CPU run
        config.update(unified_focal_length=200.0, crop_width=None, crop_height=None)
    return config


class Variant:
    """One benchmark variant: its data loader (the trainer's), its vision attention, its counters."""

    def __init__(self, name: str, trainer, batched: bool) -> None:
        self.name, self.trainer, self.batched = name, trainer, batched
        self.loader = iter(trainer.get_train_dataloader())
        self.seconds = self.cpu = self.samples = self.tokens = self.patches = self.sequences = 0.0
        self.steps = 0

    def step(self, model, optimizer, timed: bool) -> None:
        (vision_attention.enable if self.batched else vision_attention.disable)(model)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        batch = next(self.loader)
        inputs = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        model(**inputs).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if timed:
            self.seconds += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            self.steps += 1
            self.samples += float(batch["input_ids"].shape[0])
            self.tokens += float(batch["attention_mask"].sum())
            self.patches += float(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0.0


def model_flops(counts: dict[str, int], config, variant: Variant) -> float:
    """Training model FLOPs (forward + backward) of the variant's timed steps, see the module docstring."""
    text = config.text_config
    seq = variant.tokens / max(variant.samples, 1.0)
    attention = 12 * text.num_hidden_layers * text.hidden_size * seq * seq / 2 * variant.samples
    dense = 6 * (counts["text_body"] + counts["lm_head"]) * variant.tokens + 6 * counts["vision"] * variant.patches
    return dense + attention


def figures_of(variants: list[Variant], counts: dict, config, gpu: bool) -> list[dict]:
    device = torch.cuda.get_device_name(0) if gpu else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device), None)
    out = []
    for v in variants:
        flops = model_flops(counts, config, v)
        out.append(
            {
                "variant": v.name,
                "micro_batch": v.trainer.args.per_device_train_batch_size,
                "batched_vision_attention": v.batched,
                "timed_steps": v.steps,
                "samples_per_second": v.samples / v.seconds if v.seconds else None,
                "samples_per_cpu_second": v.samples / v.cpu if v.cpu else None,
                "tokens_per_second": v.tokens / v.seconds if v.seconds else None,
                "image_tokens_per_sample": v.patches / 4 / v.samples if v.samples else None,
                "text_tokens_per_sample": v.tokens / v.samples if v.samples else None,
                "achieved_tflops": flops / v.seconds / 1e12 if v.seconds else None,
                "mfu": flops / v.seconds / peak if (v.seconds and peak) else None,
            }
        )
    base = out[0]["samples_per_second"]
    for row in out:
        row["speedup_vs_baseline"] = row["samples_per_second"] / base if (base and row["samples_per_second"]) else None
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", *TEXT_CONFIGS])
    parser.add_argument("--shrink", action="store_true", help="2 layers of width 64 (a CPU dry run of the GPU path)")
    parser.add_argument("--dataset", default=None, help="a curated `jsonl:image_root` (default: synthetic scenes)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--micro_batch", type=int, default=None, help="baseline micro-batch (GPU 10, CPU 4)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rows_per_image", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="sft_throughput", help="results file stem")
    args = parser.parse_args(argv)
    from depthlm_hf.scripts import sft
    from depthlm_hf.training.setup import build_datasets, load_model, load_processor
    from depthlm_hf.training.trainers import AnswerOnlyCollator, DepthLMSFTTrainer

    torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    args.micro_batch = args.micro_batch or (10 if gpu else 4)
    folder = tempfile.mkdtemp(prefix="bench-model-")
    model_path = "tiny"
    if args.model != "tiny":
        save_random_model(args.model, Path(folder), torch.bfloat16 if gpu else torch.float32, shrink=args.shrink)
        model_path = folder
    model = None
    variants = []
    for name, batched, factor in (("baseline", False, 1), ("vision_attention", True, 1), ("micro_batch", True, 2)):
        config = recipe(model_path, args, gpu)
        config["per_device_train_batch_size"] = args.micro_batch * factor
        path = Path(config["output_dir"]) / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        script_args, training_args, model_args = sft.make_parser().parse_args_and_config(["--config", str(path)])
        training_args.remove_unused_columns = False
        processor = load_processor(model_args, script_args)
        train_dataset, _ = build_datasets(script_args, processor, training_args, kind="sft")
        if model is None:
            model = load_model(model_args, training_args).to("cuda" if gpu else "cpu")
            if training_args.gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=gpu)
        collator = AnswerOnlyCollator(processor=processor, completion_only_loss=True)
        trainer = DepthLMSFTTrainer(
            model=model,
            args=training_args,
            data_collator=collator,
            train_dataset=train_dataset,
            processing_class=processor,
        )
        trainer.read_in_order = script_args.rows_per_image > 1
        variants.append(Variant(name, trainer, batched))
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    counts = parameter_counts(model)
    for round_ in range(args.rounds + 1):  # round 0 warms up
        order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
        for variant in order:
            for _ in range(args.steps):
                variant.step(model, optimizer, timed=round_ > 0)
        if round_ == 0:
            continue
        rows = figures_of(variants, counts, model.config, gpu)
        memory = (
            torch.cuda.max_memory_allocated() / 2**30
            if gpu
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        )
        figures = {
            "scale": "one GPU, real image sizes" if gpu else "CPU (a dry run when --shrink)",
            "model": args.model + (" (shrunk)" if args.shrink else ""),
            "data": args.dataset or "synthetic scenes",
            "rounds_done": round_,
            "steps_per_round": args.steps,
            "workers": args.workers,
            "rows_per_image": args.rows_per_image,
            "peak_memory_gb": memory,
            "parameters": counts,
            "flop_count": "6 (N_text_body + N_lm_head) tokens + 6 N_vision patches + 6 L d s^2 (causal)",
            "variants": rows,
        }
        write_result(args.name, figures, quiet=True)
    for row in rows:
        print(
            f"{row['variant']:16s} mb {row['micro_batch']:3d}: {row['samples_per_second']:.2f} samples/s "
            f"({row['samples_per_cpu_second']:.2f} per CPU-s), {row['tokens_per_second']:.0f} tokens/s, "
            f"MFU {row['mfu']}, x{row['speedup_vs_baseline']:.3f} vs baseline"
        )
    return figures


if __name__ == "__main__":
    main()
