"""The whole training path on CPU in a few minutes: SFT of the tiny offline model on procedural ground-plane
scenes, GRPO from the SFT output, then an answer from the saved folder.

    python examples/train_tiny_sft_then_grpo.py [output_dir]

It shows the mechanics, not accuracy: the tiny model needs thousands of steps to learn distances
(raise `--max_steps` in the SFT call below to see it).
"""

import sys
from pathlib import Path

from transformers import AutoModelForImageTextToText

from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.scripts import grpo, sft

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "tiny"


def main(output_dir: str = "outputs/tiny-pipeline") -> None:
    out = Path(output_dir)
    sft.main(["--config", str(RECIPES / "sft" / "config_synthetic.yaml"), "--output_dir", str(out / "sft")])
    grpo.main(
        ["--config", str(RECIPES / "grpo" / "config_synthetic.yaml"), "--output_dir", str(out / "grpo"),
         "--model_name_or_path", str(out / "sft")]
    )  # fmt: skip

    model = AutoModelForImageTextToText.from_pretrained(out / "grpo")
    processor = DepthLMProcessor.from_pretrained(out / "grpo")
    record = SyntheticDataset("ground", num_scenes=1, seed=123)[0]
    point, label = record["pixel_coords"][50], float(record["depth"][50])
    inputs = processor(images=record["image"], intrinsics=record["intrinsics"], points=[point])
    output = model.generate(**inputs, max_new_tokens=32, do_sample=False)
    answer = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    print(f"label {label:.2f} m, answer {answer!r} -> {processor.parse_answer(answer)} m")


if __name__ == "__main__":
    main(*sys.argv[1:])
