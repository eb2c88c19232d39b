"""`depthlm sft`: supervised fine-tuning of a VLM to answer metric distances in text (DepthLM).

    depthlm sft --config recipes/tiny/sft/config_synthetic.yaml            # CPU, tiny offline model
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        -m depthlm_hf.scripts.sft --config recipes/qwen2_5_vl_3b/sft/config_paper.yaml

Plain TRL `SFTTrainer` on prompt/completion rows: the loss covers the answer tokens and the end-of-turn
token only (`depthlm_hf.training.trainers.AnswerOnlyCollator`), or, with `--loss_on all_but_image`, every token
but padding and image tokens as the official release trains. The output folder holds the model (or the
LoRA adapter), the `DepthLMProcessor` settings and a model card; `--push_to_hub` uploads it. The pieces
live in `depthlm_hf.training.setup`; this module reads top to bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import TrainerCallback, set_seed
from trl import ModelConfig, TrlParser

from depthlm_hf.training.configs import DepthLMScriptArguments, DepthLMSFTConfig
from depthlm_hf.training.modelcard import card_info_from_args
from depthlm_hf.training.setup import (
    build_datasets,
    load_model,
    load_processor,
    peft_config,
    resume_checkpoint,
    save_outputs,
    set_vision_attention,
    skip_report,
)
from depthlm_hf.training.trainers import AnswerOnlyCollator, DepthLMSFTTrainer


def make_parser() -> TrlParser:
    """`TrlParser` over the script, SFT and model arguments (`--config recipe.yaml`, flags override it;
    unknown keys and abbreviated flags are errors)."""
    return TrlParser((DepthLMScriptArguments, DepthLMSFTConfig, ModelConfig), allow_abbrev=False)


def train(
    script_args: DepthLMScriptArguments,
    training_args: DepthLMSFTConfig,
    model_args: ModelConfig,
    callbacks: list[TrainerCallback] | None = None,
) -> DepthLMSFTTrainer:
    """The SFT run of the parsed arguments (`callbacks` are added to the trainer's)."""
    set_seed(training_args.seed)
    # The rows carry images and target columns the model does not take; the collator picks what it needs.
    training_args.remove_unused_columns = False

    processor = load_processor(model_args, script_args)
    report = skip_report(script_args, training_args)  # skipped records: printed, checked, data_skips.json
    train_dataset, eval_dataset = build_datasets(script_args, processor, training_args, kind="sft", report=report)
    model = set_vision_attention(load_model(model_args, training_args), script_args)

    if training_args.training_pixels == "release":  # the release fed 0-255 pixel values and saved the processor so
        processor.image_processor.do_rescale = False
    collator = AnswerOnlyCollator(
        processor=processor,
        max_length=training_args.max_length,
        loss_on=training_args.loss_on,
        training_pixels=training_args.training_pixels,
    )
    trainer = DepthLMSFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config(model_args),
        callbacks=[*(callbacks or []), report],
    )
    trainer.read_in_order = script_args.rows_per_image > 1
    trainer.card_info = card_info_from_args(
        script_args, training_args, processor, model_args.model_name_or_path, "sft", peft=model_args.use_peft
    )

    trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    save_outputs(trainer, processor, trainer.card_info, training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    return trainer


def main(argv: Sequence[str] | None = None) -> DepthLMSFTTrainer:
    """Parse `argv` (default: `sys.argv[1:]`), train, save, then close the trackers and the process group;
    returns the trainer."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    trainer = train(script_args, training_args, model_args)
    trainer.end()
    return trainer


if __name__ == "__main__":
    main()
