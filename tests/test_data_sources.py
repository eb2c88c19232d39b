"""Dataset arguments (`depthlm_hf.data.sources`): shorthand, YAML mappings, names, weights, errors."""

from __future__ import annotations

import pytest
import yaml

from depthlm_hf.data.sources import DatasetSpec, parse_dataset_spec, parse_dataset_specs


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("ibims1=data/ib/val.jsonl:data/ib", DatasetSpec("ibims1", "data/ib/val.jsonl", "data/ib")),
        ("ibims1=data/ib/val.jsonl", DatasetSpec("ibims1", "data/ib/val.jsonl", "data/ib")),
        ("data/a.jsonl:/mnt/a", DatasetSpec("a", "data/a.jsonl", "/mnt/a")),  # the name is the file's stem
        ("c=C:/b.jsonl:D:/imgs", DatasetSpec("c", "C:/b.jsonl", "D:/imgs")),  # colons inside paths survive
        ("val.jsonl", DatasetSpec("val", "val.jsonl", ".")),
    ],
)
def test_shorthand(entry, expected):
    assert parse_dataset_spec(entry) == expected


def test_yaml_list_of_mappings():
    entries = yaml.safe_load(
        """
        - {name: argoverse2, jsonl: d/argoverse2_train.jsonl, image_root: d/argoverse2}
        - {jsonl: d/matterport3d_train.jsonl, weight: 0.1}
        - hm3d=d/hm3d_train.jsonl:d/hm3d
        """
    )
    assert parse_dataset_specs(entries) == [
        DatasetSpec("argoverse2", "d/argoverse2_train.jsonl", "d/argoverse2", 1.0),
        DatasetSpec("matterport3d_train", "d/matterport3d_train.jsonl", "d", 0.1),
        DatasetSpec("hm3d", "d/hm3d_train.jsonl", "d/hm3d", 1.0),
    ]


def test_repeated_names_are_refused_even_when_the_files_differ():
    with pytest.raises(ValueError, match="`data` names must be unique, got 'val' more than once"):
        parse_dataset_specs(["a/val.jsonl", "b/val.jsonl"], argument="data")
    assert [s.name for s in parse_dataset_specs(["a=x/val.jsonl", "b=x/val.jsonl"])] == ["a", "b"]


@pytest.mark.parametrize(
    ("entry", "error", "message"),
    [
        ("a=b", ValueError, r"`dataset` entries must look like \[NAME=\]JSONL\[:IMAGE_ROOT\] .* got 'a=b'"),
        ("x.jsonl:", ValueError, "`dataset` entries must look like"),
        ("=x.jsonl", ValueError, "`dataset` entries must look like"),
        ({"name": "a"}, ValueError, "`dataset` mappings take the keys name, jsonl, image_root, weight"),
        ({"jsonl": "a.jsonl", "root": "a"}, ValueError, "`dataset` mappings take the keys"),
        ({"jsonl": "a.jsonl", "weight": -1}, ValueError, "`dataset` weights must be numbers >= 0, got -1"),
        ({"jsonl": "a.jsonl", "weight": "high"}, ValueError, "`dataset` weights must be numbers >= 0"),
        (3, TypeError, "`dataset` entries must be strings .* or mappings, got int 3"),
    ],
)
def test_bad_entries_name_the_argument(entry, error, message):
    with pytest.raises(error, match=message):
        parse_dataset_specs([entry])


def test_weights_need_a_positive_sum():
    with pytest.raises(ValueError, match="`dataset` weights must have a positive sum, got \\[0.0\\]"):
        parse_dataset_specs([{"jsonl": "a.jsonl", "weight": 0}])


def test_spec_loads_the_curated_dataset_under_its_name(tmp_path):
    (tmp_path / "val.jsonl").write_text("")
    dataset = parse_dataset_spec(f"mine={tmp_path / 'val.jsonl'}").load()
    assert dataset.dataset == "mine" and len(dataset) == 0
