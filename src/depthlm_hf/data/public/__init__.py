"""Readers of the public datasets of DepthLMBench: one per dataset, each turning the dataset's own on-disk
layout into camera frames with labelled pixels (`depthlm prepare --dataset NAME --root ROOT --split SPLIT`).

:data:`PUBLIC_DATASETS` maps every name to its splits and reader; :func:`public_dataset` looks one up and
its error lists the valid names. The splits and sampling rules are the release's curation scripts'
(each module's docstring says which and where this library differs); docs/data.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from depthlm_hf.data.public.argoverse2 import read_argoverse2
from depthlm_hf.data.public.ddad import read_ddad
from depthlm_hf.data.public.eth3d import read_eth3d
from depthlm_hf.data.public.frames import Frame, FrameSource, Reader, ReaderOptions, frame_to_record
from depthlm_hf.data.public.matterport3d import read_matterport3d
from depthlm_hf.data.public.nuscenes import read_nuscenes
from depthlm_hf.data.public.scannetpp import read_scannetpp
from depthlm_hf.data.public.sunrgbd import read_nyuv2, read_sunrgbd
from depthlm_hf.data.public.waymo import read_waymo

PublicName = Literal[
    "argoverse2", "waymo", "nuscenes", "scannetpp", "matterport3d", "ddad", "eth3d", "sunrgbd", "nyuv2"
]
PUBLIC_NAMES: tuple[str, ...] = get_args(PublicName)


@dataclass(frozen=True)
class PublicDataset:
    """A public dataset: its `name`, the `splits` its reader knows (the first is the default) and `read`,
    called as `read(root, split, options)` and yielding `(key, load)` pairs (see :mod:`.frames`)."""

    name: str
    splits: tuple[str, ...]
    read: Reader


PUBLIC_DATASETS: dict[str, PublicDataset] = {
    dataset.name: dataset
    for dataset in (
        PublicDataset("argoverse2", ("train", "val"), read_argoverse2),
        PublicDataset("waymo", ("train", "val"), read_waymo),
        PublicDataset("nuscenes", ("train", "eval"), read_nuscenes),
        PublicDataset("scannetpp", ("train", "eval"), read_scannetpp),
        PublicDataset("matterport3d", ("train",), read_matterport3d),
        PublicDataset("ddad", ("eval",), read_ddad),
        PublicDataset("eth3d", ("eval",), read_eth3d),
        PublicDataset("sunrgbd", ("eval",), read_sunrgbd),
        PublicDataset("nyuv2", ("eval",), read_nyuv2),
    )
}
assert tuple(PUBLIC_DATASETS) == PUBLIC_NAMES


def public_dataset(name: str, split: str | None = None) -> PublicDataset:
    """The dataset `name` (checking `split` when given); errors list the valid names or splits.

    >>> public_dataset("nuscenes", "eval").splits
    ('train', 'eval')
    >>> public_dataset("kitti")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `dataset` must be one of argoverse2, waymo, nuscenes, ..., nyuv2 for `root`, got 'kitti'.
    """
    if name not in PUBLIC_DATASETS:
        raise ValueError(f"`dataset` must be one of {', '.join(PUBLIC_NAMES)} for `root`, got {name!r}.")
    dataset = PUBLIC_DATASETS[name]
    if split is not None and split not in dataset.splits:
        raise ValueError(f"`split` of {name} must be one of {', '.join(dataset.splits)}, got {split!r}.")
    return dataset


__all__ = [
    "PUBLIC_DATASETS",
    "PUBLIC_NAMES",
    "Frame",
    "FrameSource",
    "PublicDataset",
    "PublicName",
    "ReaderOptions",
    "frame_to_record",
    "public_dataset",
]
