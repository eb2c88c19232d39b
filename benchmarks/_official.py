"""Faithful reimplementations of the official DepthLM release, for timing only: the training-row image side
(`OfficialRows`) and the evaluation loop (`official_generate`).

It follows `dataset_train.getitem_noTaskonomy` of facebookresearch/DepthLM_Official (utils/datasets.py, read
from the mirror; no code copied): records held in memory as dicts (read with pandas), per row: open the PNG,
undistort with OpenCV when fx != fy (iBims-1: 559.62 vs 558.14, so every iBims-1 row pays it), resize by
f*/fx with PIL's default (bicubic) filter, map every labelled pixel, crop a random size centred on the image
centre, pick a random labelled pixel inside the crop (nearest valid index otherwise), draw the 5 px arrow
with `putpixel`, and format the prompt strings. The Qwen image processor runs later, in the collator.
"""

from __future__ import annotations

import os
import random
from io import StringIO
from typing import Any

import numpy as np
from PIL import Image

CROSS = 5


def read_records(jsonl_path: str) -> list[dict]:
    """The jsonl as a list of dicts, read as the release reads it (pandas)."""
    import pandas as pd

    with open(jsonl_path) as f:
        return pd.read_json(StringIO(f.read()), lines=True).to_dict(orient="records")


def _undistort(intrinsics: list[float], image: Image.Image) -> tuple[Image.Image, list[float]]:
    if abs(intrinsics[0] - intrinsics[1]) <= 1e-3:
        return image, intrinsics
    import cv2

    array = np.array(image)
    size = (array.shape[1], array.shape[0])
    matrix = np.array([[intrinsics[0], 0, intrinsics[2]], [0, intrinsics[1], intrinsics[3]], [0, 0, 1]])
    new_matrix, _ = cv2.getOptimalNewCameraMatrix(matrix, np.zeros((4, 1)), size, 1, size)
    out = cv2.undistort(array, matrix, np.zeros((4, 1)), None, new_matrix)
    return Image.fromarray(out), [new_matrix[0, 0], new_matrix[1, 1], new_matrix[0, 2], new_matrix[1, 2]]


class OfficialRows:
    """Rows of the official training dataset's image side (one decode, undistort and resize per row).

    `undistort=False` leaves the OpenCV step out (what the release costs on datasets with fx == fy).
    """

    def __init__(
        self,
        records: list[dict],
        image_root: str,
        focal: float = 1000.0,
        width: tuple[int, int] = (1000, 1400),
        height: tuple[int, int] = (700, 1200),
        undistort: bool = True,
        seed: int = 0,
    ) -> None:
        self.records, self.root, self.focal = records, image_root, focal
        self.width, self.height, self.undistort = width, height, undistort
        self.random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.records) * 100

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index % len(self.records)]
        intrinsics = list(record["intrinsics"][:4])
        image = Image.open(os.path.join(self.root, record["image"].lstrip("/")))
        new = intrinsics
        if self.undistort:
            image, new = _undistort(intrinsics, image)
        scale = self.focal / new[0]
        image = image.resize((int(image.width * scale), int(image.height * scale)))
        new = [v * scale for v in new]
        coords = [
            [
                int((x - intrinsics[2]) * (new[0] / intrinsics[0]) + new[2]),
                int((y - intrinsics[3]) * (new[1] / intrinsics[1]) + new[3]),
            ]
            for x, y in record["pixel_coords"]
        ]
        crop_h = int(min(image.height, self.random.uniform(*self.height)))
        crop_w = int(min(image.width, self.random.uniform(*self.width)))
        left, top = max(0, (image.width - crop_w) // 2), max(0, (image.height - crop_h) // 2)
        right, bottom = min(image.width, left + crop_w), min(image.height, top + crop_h)
        image = image.crop((left, top, right, bottom))
        inside = [[x - left, y - top] if left <= x < right and top <= y < bottom else [-1, -1] for x, y in coords]
        pick = _nearest_valid(self.random.randint(0, len(inside) - 1), inside)
        if pick < 0:
            return self[index + 1]
        x, y = inside[pick]
        if not (CROSS <= x < image.width - CROSS and CROSS <= y < image.height - CROSS):
            return self[index + 1]
        for dx in range(1, CROSS + 1):
            image.putpixel((x - dx, y), (255, 0, 0))
        for dy in range(1, CROSS // 2 + 1):
            image.putpixel((x - dy - 1, y + dy), (255, 0, 0))
            image.putpixel((x - dy - 1, y - dy), (255, 0, 0))
        depth = record["depth"][pick]
        return {
            "image": image,
            "problem": "Given this image, how far is the point pointed by the red arrow from the camera?",
            "thinking": f"<think> The point is around {depth:.2f} meters away from the camera. </think>",
            "solution": f"<answer> {depth:.2f} </answer>",
        }


def _nearest_valid(index: int, coords: list[list[int]]) -> int:
    if coords[index] != [-1, -1]:
        return index
    for step in range(1, len(coords)):
        for candidate in (index - step, index + step):
            if 0 <= candidate < len(coords) and coords[candidate] != [-1, -1]:
                return candidate
    return -1


def official_generate(model, processor, image, camera, points, batch_size: int = 3, max_new_tokens: int = 4096):
    """The official evaluation loop: per-query preparation, full answers until end of turn, then parsing."""
    values, new_tokens = [], 0
    for start in range(0, len(points), batch_size):
        inputs = processor(images=image, intrinsics=camera, points=points[start : start + batch_size])
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, top_p=None, top_k=None)
        generated = out[:, inputs["input_ids"].shape[1] :]
        new_tokens += int((generated != processor.tokenizer.pad_token_id).sum())
        values += [processor.parse_answer(t) for t in processor.batch_decode(generated, skip_special_tokens=True)]
    return values, new_tokens
