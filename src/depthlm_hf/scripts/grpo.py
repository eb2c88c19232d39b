"""`depthlm grpo`: GRPO fine-tuning of a (usually SFT-trained) DepthLM model with metric rewards.

    depthlm grpo --config recipes/tiny/grpo/config_synthetic.yaml          # CPU, tiny offline model
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        -m depthlm_hf.scripts.grpo --config recipes/qwen2_5_vl_3b/grpo/config_paper.yaml

Plain TRL `GRPOTrainer`: the model answers with a think/answer completion, rewards come from
`depthlm_hf.training.rewards` (the paper's negative L1 by default), and `--use_vllm true` generates with vLLM
where it is installed. The output folder holds the model, the `DepthLMProcessor` (with the GRPO
system prompt) and a model card. The pieces live in `depthlm_hf.training.setup`; this module reads top to bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import TrainerCallback, set_seed
from trl import ModelConfig, TrlParser

from depthlm_hf.training.configs import DepthLMGRPOConfig, DepthLMScriptArguments
from depthlm_hf.training.modelcard import card_info_from_args
from depthlm_hf.training.rewards import build_rewards
from depthlm_hf.training.setup import (
    build_datasets,
    check_vllm,
    load_model,
    load_processor,
    peft_config,
    resume_checkpoint,
    save_outputs,
    set_vision_attention,
    skip_report,
)
from depthlm_hf.training.trainers import DepthLMGRPOTrainer


def make_parser() -> TrlParser:
    """`TrlParser` over the script, GRPO and model arguments (`--config recipe.yaml`, flags override it;
    unknown keys and abbreviated flags are errors)."""
    return TrlParser((DepthLMScriptArguments, DepthLMGRPOConfig, ModelConfig), allow_abbrev=False)


def train(
    script_args: DepthLMScriptArguments,
    training_args: DepthLMGRPOConfig,
    model_args: ModelConfig,
    callbacks: list[TrainerCallback] | None = None,
) -> DepthLMGRPOTrainer:
    """The GRPO run of the parsed arguments (`callbacks` are added to the trainer's)."""
    set_seed(training_args.seed)
    check_vllm(training_args)
    # Rewards first: a bad reward name fails before the model is loaded.
    rewards = build_rewards(
        training_args.reward_funcs, training_args.unparseable_penalty, think_answer=bool(training_args.system_prompt)
    )

    processor = load_processor(model_args, script_args)
    processor.system_prompt = training_args.system_prompt or None
    report = skip_report(script_args, training_args)  # skipped records: printed, checked, data_skips.json
    train_dataset, eval_dataset = build_datasets(script_args, processor, training_args, kind="grpo", report=report)
    model = set_vision_attention(load_model(model_args, training_args), script_args)

    trainer = DepthLMGRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config(model_args),
        callbacks=[*(callbacks or []), report],
    )
    trainer.card_info = card_info_from_args(
        script_args, training_args, processor, model_args.model_name_or_path, "grpo", peft=model_args.use_peft
    )

    trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    save_outputs(trainer, processor, trainer.card_info, training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    return trainer


def main(argv: Sequence[str] | None = None) -> DepthLMGRPOTrainer:
    """Parse `argv` (default: `sys.argv[1:]`), train, save, then close the trackers and the process group;
    returns the trainer."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    trainer = train(script_args, training_args, model_args)
    trainer.end()
    return trainer


if __name__ == "__main__":
    main()
