"""Helpers for tests and benchmarks only (production code never imports this module)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from depthlm_hf.prompting.processing import DepthLMProcessor


def flat_image(level: int, width: int = 112, height: int = 84) -> Image.Image:
    """A uniform grey RGB image of `level` (0-255): the simplest image whose content can encode an answer."""
    return Image.fromarray(np.full((height, width, 3), level, np.uint8))


def fit_answer_template(
    model,
    processor: DepthLMProcessor,
    values: Sequence[float] = (1.25, 2.5, 4.75, 8.0),
    camera: Sequence[float] = (100.0, 100.0, 56.0, 42.0, 112, 84),
    steps: int = 150,
    lr: float = 3e-3,
) -> float:
    """Plain-torch SFT until image i (grey 40 + 50 i, a marker at the centre) is answered with `values[i]` [m].

    Teaches a random tiny model the answer template and to end its turn, which tests and benchmarks of
    generation need. Loss on the answer and the end-of-turn token only. Returns the last loss.
    """
    width, height = int(camera[4]), int(camera[5])
    rows = [
        processor.training_row(flat_image(40 + 50 * i, width, height), list(camera), [[width // 2, height // 2]], v)
        for i, v in enumerate(values)
    ]
    base = processor.base_processor
    prompt = base.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    texts = [prompt + r["completion"][0]["content"][0]["text"] + processor.tokenizer.eos_token for r in rows]
    batch = base(images=[r["images"] for r in rows], text=texts, padding=True, return_tensors="pt")
    prompt_length = base(images=[rows[0]["images"]], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
    labels = batch["input_ids"].clone()
    labels[:, :prompt_length] = -100
    labels[batch["attention_mask"] == 0] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return float(loss.detach())
