"""`depthlm grpo`: GRPO fine-tuning of a (usually SFT-trained) DepthLM model with metric rewards.

    depthlm grpo --config recipes/tiny/grpo/config_synthetic.yaml          # CPU, tiny offline model
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        -m depthlm_hf.scripts.grpo --config recipes/qwen2_5_vl_3b/grpo/config_paper.yaml

Plain TRL `GRPOTrainer`: the model answers with a think/answer completion, rewards come from
`depthlm_hf.training.rewards` (the paper's negative L1 by default), and `--use_vllm true` generates with vLLM
where it is installed. The output folder holds the model, the `DepthLMProcessor` (with the GRPO
system prompt) and a model card.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from transformers import TrainerCallback, set_seed
from trl import GRPOTrainer, ModelConfig, TrlParser

from depthlm_hf.scripts.sft import (
    CheckpointResumeMixin,
    build_datasets,
    load_model,
    load_processor,
    peft_config,
    resume_checkpoint,
    save_outputs,
)
from depthlm_hf.training.configs import DepthLMGRPOConfig, DepthLMScriptArguments
from depthlm_hf.training.modelcard import ModelCardMixin, card_info_from_args
from depthlm_hf.training.rewards import RewardFunc, get_reward

_ACCURACY_REWARDS = ("neg_l1", "neg_l2", "neg_absrel", "delta1")


class DepthLMGRPOTrainer(CheckpointResumeMixin, ModelCardMixin, GRPOTrainer):
    """TRL's `GRPOTrainer`, resuming with the checkpoint's weights and writing the DepthLM model card."""


def reward_functions(training_args: DepthLMGRPOConfig) -> list[RewardFunc]:
    """The rewards named in `reward_funcs`, with `unparseable_penalty` applied to the accuracy rewards."""
    rewards = []
    for name in training_args.reward_funcs:
        params = {}
        if name in _ACCURACY_REWARDS and training_args.unparseable_penalty is not None:
            params["penalty"] = training_args.unparseable_penalty
        if name == "format" and not training_args.system_prompt:
            params["think_answer"] = False
        rewards.append(get_reward(name, **params))
    return rewards


def check_vllm(training_args: DepthLMGRPOConfig) -> None:
    """Fail early, with the fix, when vLLM generation is asked for but vLLM is not installed."""
    if training_args.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ValueError("`use_vllm` is true but vLLM is not installed: `pip install vllm`, or set `use_vllm: false`.")


def make_parser() -> TrlParser:
    """`TrlParser` over the script, GRPO and model arguments (`--config recipe.yaml`, flags override it;
    unknown keys and abbreviated flags are errors)."""
    return TrlParser((DepthLMScriptArguments, DepthLMGRPOConfig, ModelConfig), allow_abbrev=False)


def main(argv: Sequence[str] | None = None) -> DepthLMGRPOTrainer:
    """Parse `argv` (default: `sys.argv[1:]`), train, save, then close the trackers and the process group;
    returns the trainer."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    trainer = train(script_args, training_args, model_args)
    trainer.end()
    return trainer


def train(
    script_args: DepthLMScriptArguments,
    training_args: DepthLMGRPOConfig,
    model_args: ModelConfig,
    callbacks: list[TrainerCallback] | None = None,
) -> DepthLMGRPOTrainer:
    """The GRPO run of the parsed arguments (`callbacks` are added to the trainer's)."""
    set_seed(training_args.seed)
    check_vllm(training_args)
    rewards = reward_functions(training_args)

    processor = load_processor(model_args, script_args)
    processor.system_prompt = training_args.system_prompt or None
    train_dataset, eval_dataset = build_datasets(script_args, processor, training_args, kind="grpo")
    model = load_model(model_args, training_args)

    trainer = DepthLMGRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config(model_args),
        callbacks=callbacks,
    )
    trainer.card_info = card_info_from_args(
        script_args, training_args, processor, model_args.model_name_or_path, "grpo", peft=model_args.use_peft
    )

    trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    save_outputs(trainer, processor, trainer.card_info, training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    return trainer


if __name__ == "__main__":
    main()
