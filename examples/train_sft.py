"""Supervised fine-tuning of a VLM for metric distances: `depthlm sft` as a plain script.

CPU, the tiny offline model on procedural scenes (about a minute):

    python examples/train_sft.py --config recipes/tiny/sft/config_synthetic.yaml

The paper's Qwen2.5-VL-3B recipe on one node of 8 GPUs (flags after the recipe override it):

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        examples/train_sft.py --config recipes/qwen2_5_vl_3b/sft/config_paper.yaml --output_dir runs/3b
"""

from depthlm_hf.scripts.sft import make_parser, train

if __name__ == "__main__":
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    trainer = train(script_args, training_args, model_args)
    trainer.end()  # close the trackers and the process group
