"""Quick start: mark a pixel, ask a (tiny, untrained) VLM how far it is, read the answer in metres.

With a trained checkpoint replace the first line by
`model = AutoModelForImageTextToText.from_pretrained(path)` and `processor = DepthLMProcessor.from_pretrained(path)`.

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from depthlm_hf.models.tiny import tiny_qwen2_5_vl


def main() -> None:
    model, processor = tiny_qwen2_5_vl()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    intrinsics = [150.0, 150.0, 79.5, 59.5, 160, 120]  # fx, fy, cx, cy [px], width, height
    prepared = processor.prepare(image, intrinsics, [[100, 60]])
    print(
        f"model image {prepared.image.size}, marker at {prepared.points.tolist()}, f = {prepared.intrinsics.fx:.1f} px"
    )
    inputs = processor(images=image, intrinsics=intrinsics, points=[[100, 60], [40, 90]], force_answer_prefix=True)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    for text in texts:
        print(f"answer {text!r} -> {processor.parse_answer(text)} m (random weights: None is expected)")
    print(processor.format_answer(3.14159), "->", processor.parse_answer(processor.format_answer(3.14159)))


if __name__ == "__main__":
    main()
