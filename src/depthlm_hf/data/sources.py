"""Dataset arguments of `depthlm sft`, `depthlm grpo` and `depthlm eval`: one syntax, one parser.

An entry names one curated dataset (a jsonl file of DepthLM records and the folder its image paths are
relative to), either as a command-line shorthand or as a YAML mapping in a recipe:

    --dataset ibims1=data/ibims1/val.jsonl:data/ibims1 nyu=data/nyu/val.jsonl

    dataset:
      - {name: argoverse2, jsonl: data/argoverse2_train.jsonl, image_root: data/argoverse2}
      - {name: matterport3d, jsonl: data/matterport3d_train.jsonl, weight: 0.1}

Shorthand: `[NAME=]JSONL[:IMAGE_ROOT]`; NAME defaults to the jsonl file's stem, IMAGE_ROOT to its folder
and the weight to 1 (a mapping sets `weight` for mixtures). Names must be unique: they name the output
folders of an evaluation and the sources of a mixture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlm_hf.data.curated import CuratedDataset, load_curated

_KEYS = ("name", "jsonl", "image_root", "weight")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
"""A dataset name: it names an output folder (`OUTPUT_DIR/NAME/TASK`), so it is one plain path component."""


@dataclass(frozen=True)
class DatasetSpec:
    """One curated dataset: its unique `name`, `jsonl` path, `image_root` folder and mixture `weight`."""

    name: str
    jsonl: str
    image_root: str
    weight: float = 1.0

    def load(self, max_pixels: int | None = None) -> CuratedDataset:
        """The dataset's records, read lazily (`depthlm_hf.data.load_curated`), images up to `max_pixels`
        (default: the loader's limit; pass the processor's `max_image_pixels` so that a raised limit holds)."""
        limit = {} if max_pixels is None else {"max_pixels": max_pixels}
        return load_curated(self.jsonl, self.image_root, dataset=self.name, **limit)


def parse_dataset_spec(entry: str | Mapping[str, Any], argument: str = "dataset") -> DatasetSpec:
    """One entry, shorthand `[NAME=]JSONL[:IMAGE_ROOT]` or a mapping `{name, jsonl, image_root, weight}`.

    >>> parse_dataset_spec("ibims1=data/ibims1/val.jsonl:data/ibims1")
    DatasetSpec(name='ibims1', jsonl='data/ibims1/val.jsonl', image_root='data/ibims1', weight=1.0)
    >>> parse_dataset_spec("data/nyu_val.jsonl")
    DatasetSpec(name='nyu_val', jsonl='data/nyu_val.jsonl', image_root='data', weight=1.0)
    >>> parse_dataset_spec({"jsonl": "a/hm3d.jsonl", "weight": 0.1})
    DatasetSpec(name='hm3d', jsonl='a/hm3d.jsonl', image_root='a', weight=0.1)
    """
    if isinstance(entry, str):
        name, sep, rest = entry.partition("=")
        if not sep:
            name, rest = "", entry
        # Split at ".jsonl:" so that colons inside the image root (or a drive letter) stay in the path.
        jsonl, sep, root = rest.partition(".jsonl:")
        fields: dict[str, Any] = {"name": name, "jsonl": jsonl + ".jsonl" if sep else jsonl, "image_root": root}
        if (sep and not root) or (not sep and not jsonl.endswith(".jsonl")) or (not name and "=" in entry):
            raise ValueError(
                f"`{argument}` entries must look like [NAME=]JSONL[:IMAGE_ROOT] with a `.jsonl` file, got {entry!r}."
            )
    elif isinstance(entry, Mapping):
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown or "jsonl" not in entry:
            raise ValueError(
                f"`{argument}` mappings take the keys {', '.join(_KEYS)} (`jsonl` required), got {dict(entry)!r}."
            )
        fields = dict(entry)
    else:
        raise TypeError(
            f"`{argument}` entries must be strings ([NAME=]JSONL[:IMAGE_ROOT]) or mappings, "
            f"got {type(entry).__name__} {entry!r}."
        )
    jsonl = str(fields["jsonl"])
    weight = fields.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise ValueError(f"`{argument}` weights must be numbers >= 0, got {weight!r} in {entry!r}.")
    name = fields.get("name") or Path(jsonl).stem
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise ValueError(
            f"`{argument}` names must be 1-100 letters, digits, '_', '.', '+' or '-', not starting with '.' or '-' "
            f"(they name output folders: no path separators, '..' or absolute paths); got {name!r} in {entry!r}."
        )
    return DatasetSpec(
        name=name,
        jsonl=jsonl,
        image_root=str(fields.get("image_root") or Path(jsonl).parent),
        weight=float(weight),
    )


def parse_dataset_specs(entries: Sequence[str | Mapping[str, Any]], argument: str = "dataset") -> list[DatasetSpec]:
    """Every entry of a dataset argument (see :func:`parse_dataset_spec`); repeated names are an error.

    >>> [spec.name for spec in parse_dataset_specs(["a=x/1.jsonl", "x/b.jsonl:x"])]
    ['a', 'b']
    """
    if isinstance(entries, (str, Mapping)):
        entries = [entries]
    specs = [parse_dataset_spec(entry, argument) for entry in entries]
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"`{argument}` names must be unique, got {', '.join(map(repr, repeated))} more than once: "
            "name the entries (NAME=JSONL[:IMAGE_ROOT] or a mapping's `name`)."
        )
    if specs and sum(spec.weight for spec in specs) <= 0:
        raise ValueError(f"`{argument}` weights must have a positive sum, got {[spec.weight for spec in specs]}.")
    return specs
