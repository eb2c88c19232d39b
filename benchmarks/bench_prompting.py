"""Visual-prompt preparation speed: focal unification (f* = 1000 px) + arrow of a 640x480 image, one core.

python benchmarks/bench_prompting.py [--images 200]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _common import write_result  # noqa: E402
from PIL import Image  # noqa: E402

from depthlm_hf.models.tiny import tiny_processor  # noqa: E402

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    processor = tiny_processor(unified_focal_length=1000.0)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) for _ in range(8)]
    points = rng.integers([10, 10], [630, 470], size=(args.images, 2))
    processor.prepare(images[0], IBIMS, [[320, 240]])  # warm-up
    start = time.perf_counter()
    for i in range(args.images):
        processor.prepare(images[i % len(images)], IBIMS, points[i : i + 1])
    seconds = time.perf_counter() - start
    write_result(
        "prompting",
        {
            "task": "focal unification to 1000 px + arrow marker, 640x480 -> 1143x859 RGB",
            "images": args.images,
            "images_per_second": args.images / seconds,
            "ms_per_image": 1000 * seconds / args.images,
            "threads": 1,
        },
    )


if __name__ == "__main__":
    main()
