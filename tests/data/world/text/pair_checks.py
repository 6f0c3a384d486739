"""Checks every world text-pair task (``text-para``, ``text-qnli``: ``first [SEP] second``, two
classes, one scene per row) must pass; each test file calls them with its own task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from cotrain.cli import main
from cotrain.config import config_from_dict
from cotrain.data.sources import build_all_task_data
from cotrain.data.world import world_class_names, world_task_inputs
from cotrain.data.world.text import build_text_world_task

SPLITS = ("train", "val", "test")
KEYS = ("text_raw", "label", "image_id")


def builder(name: str):
    """``build(seed=0, cache_dir=None, **sizes)`` of task ``name`` (30 / 12 / 12 rows by default)."""
    def build(seed=0, cache_dir=None, **sizes):
        sizes = {"n_train": 30, "n_val": 12, "n_test": 12, **sizes}
        return build_text_world_task(name, seed=seed, cache_dir=cache_dir, **sizes)
    return build


def check_contract(build, name: str, classes: list[str], kinds, sides_ok) -> None:
    """Arrays and types of every split; ``sides_ok(first, second)`` judges the two sides of each text."""
    td = build()
    assert td.name == name and td.inputs == ("text",) and td.class_names == classes and not td.multilabel
    assert world_task_inputs(name) == ("text",) and world_class_names(name) == classes
    for split, n in (("train", 30), ("val", 12), ("test", 12)):
        a = td.split(split).arrays
        assert set(a) == set(KEYS)
        assert a["text_raw"].dtype.kind == "U" and a["text_raw"].shape == (n,)
        assert a["label"].dtype == np.int64 and set(a["label"].tolist()) <= {0, 1}
        assert a["image_id"].dtype == np.int64 and a["image_id"].shape == (n,)
        for text in a["text_raw"]:
            first, second = str(text).split(" [SEP] ")  # exactly one separator
            assert first[0].isupper() and second[0].isupper() and sides_ok(first, second), text
    assert set(td.meta["extra"]["train"]["kind"].tolist()) <= set(kinds)


def check_determinism(build) -> None:
    """The same seed gives the same rows, another seed others; a smaller split is a prefix."""
    a, b, c = build(seed=3), build(seed=3), build(seed=4)
    for split in SPLITS:
        for key in KEYS:
            np.testing.assert_array_equal(a.split(split).arrays[key], b.split(split).arrays[key])
    assert not np.array_equal(a.train.arrays["text_raw"], c.train.arrays["text_raw"])
    small = build(seed=3, n_train=10)
    for key in KEYS:
        np.testing.assert_array_equal(small.train.arrays[key], a.train.arrays[key][:10])


def check_cache_round_trip(build, name: str, tmp_path: Path) -> None:
    first, second = build(seed=1, cache_dir=tmp_path), build(seed=1, cache_dir=tmp_path)
    assert not first.meta["from_cache"] and second.meta["from_cache"]
    assert Path(second.meta["cache_path"]).name.startswith(f"{name}-")
    for split in SPLITS:
        for key in KEYS:
            np.testing.assert_array_equal(first.split(split).arrays[key], second.split(split).arrays[key])


def check_balance_and_disjoint_scenes(build):
    """Labels balanced within one per split, one row per scene, no scene in two splits; the data."""
    td = build(n_train=301, n_val=100, n_test=99)
    for split, n in (("train", 301), ("val", 100), ("test", 99)):
        counts = np.bincount(td.split(split).arrays["label"], minlength=2)
        assert counts.sum() == n and counts.max() - counts.min() <= 1, (split, counts)
    ids = {s: set(td.split(s).arrays["image_id"].tolist()) for s in SPLITS}
    assert len(ids["train"]) == 301  # one row per scene
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    return td


def check_config_and_info(tmp_path: Path, capsys, task: str, world_name: str, max_len: int) -> None:
    """The task through a YAML config: ``cotrain info``'s row, then tokenised with one [SEP] and
    nothing truncated at ``max_len``."""
    raw = {"name": task, "data": {"seed": 0, "root": str(tmp_path / "data")},
           "tasks": [{"name": task, "source": {"kind": "world", "name": world_name, "n_train": 40, "n_val": 8,
                                               "n_test": 8}}],
           "model": {"dim": 32, "depth": 2, "num_heads": 2,
                     "encoders": {"text": {"max_len": max_len, "vocab_size": 300}}}}
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["info", str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith(f"{task} "))
    assert row.split()[1:5] == ["text", task, "(classify)", "2"] and f"world:{world_name}" in row
    data, tok = build_all_task_data(config_from_dict(raw))
    ids = data[task].train.arrays["text"]
    assert ids.shape == (40, max_len) and ((ids == tok.token_to_id("[SEP]")).sum(axis=1) == 1).all()
    assert (ids[:, -1] == 0).all()  # nothing truncated at this max_len
