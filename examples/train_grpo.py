"""GRPO fine-tuning of a DepthLM model with the negative L1 reward: `depthlm grpo` as a plain script.

CPU, the tiny offline model (start it from a tiny SFT output for rewards that move):

    python examples/train_grpo.py --config recipes/tiny/grpo/config_synthetic.yaml \\
        --model_name_or_path outputs/tiny-sft

The paper's recipe from a Qwen2.5-VL-3B SFT checkpoint on one node of 8 GPUs:

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        examples/train_grpo.py --config recipes/qwen2_5_vl_3b/grpo/config_paper.yaml

Other rewards: `--reward_funcs neg_l1 format`, or a dotted path to your own function
`my_package.rewards:my_reward` taking `(completions, depth, **columns)`.
"""

from depthlm_hf.scripts.grpo import make_parser, train

if __name__ == "__main__":
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    trainer = train(script_args, training_args, model_args)
    trainer.end()  # close the trackers and the process group
