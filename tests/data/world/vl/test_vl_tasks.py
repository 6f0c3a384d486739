"""The V&L tasks of the world: contract (docs/vl-contract.md), determinism, splits, cache."""

from __future__ import annotations

import numpy as np
import pytest
from vl_helpers import SMALL, build

from cotrain.data.world import render_scene
from cotrain.data.world.vl import (
    GQA_ANSWERS,
    REGION_DIM,
    VL_TASKS,
    VQA_ANSWERS,
    build_vl_world_task,
    scene_for_vl_example,
)
from cotrain.data.world.vl import build as vl_build

SPLITS = ("train", "val", "test")
SIZES = {"train": SMALL["n_train"], "val": SMALL["n_val"], "test": SMALL["n_test"]}


def views(name: str, split: str) -> tuple[int, ...]:
    head = VL_TASKS[name].head_type
    if head == "nlvr":
        return (2,)
    return ()


def test_task_table():
    groups = {g: sorted(n for n, t in VL_TASKS.items() if t.group == g) for g in ("G1", "G2", "G3", "G4")}
    assert groups == {
        "G1": ["gqa", "vgqa", "vqa"],
        "G2": ["coco-ir", "flickr-ir"],
        "G3": ["guesswhat", "pointing", "refcoco", "refcoco+", "refcocog"],
        "G4": ["nlvr", "snli-ve"],
    }
    heads = {n: t.head_type for n, t in VL_TASKS.items()}
    assert {heads[n] for n in groups["G1"]} == {"vqa"} and {heads[n] for n in groups["G2"]} == {"retrieval"}
    assert {heads[n] for n in groups["G3"]} == {"refexp"}
    assert heads["nlvr"] == "nlvr" and heads["snli-ve"] == "snli-ve"
    pretrain = {n: (t.head_type, t.pool) for n, t in VL_TASKS.items() if t.group == "pretrain"}
    assert pretrain == {"captions": ("pretrain", "cc"), "captions-shift": ("pretrain", "cc-shift")}


@pytest.mark.parametrize("name", list(VL_TASKS))
def test_arrays_follow_the_contract(small, name):
    td = small[name]
    head = VL_TASKS[name].head_type
    assert td.inputs == ("image", "text", "regions") and td.name == name
    assert td.meta["head_type"] == head and td.meta["group"] == VL_TASKS[name].group
    assert td.meta["region_dim"] == REGION_DIM and td.meta["image_size"] == 48
    assert td.meta["generator_version"] == vl_build.VL_GENERATOR_VERSION
    assert td.multilabel == (head == "vqa")
    expected_classes = {"retrieval": ["match"], "refexp": ["region"], "nlvr": ["false", "true"],
                        "snli-ve": ["entailment", "neutral", "contradiction"],
                        "pretrain": ["background", "circle", "square", "triangle", "diamond", "cross", "star"]}
    if head == "vqa":
        assert td.class_names == (GQA_ANSWERS if name == "gqa" else VQA_ANSWERS)
    else:
        assert td.class_names == expected_classes[head]
    r = 12
    for split in SPLITS:
        a = td.split(split).columns()
        n, k = SIZES[split], views(name, split)
        assert a["text_raw"].shape == (n,) and a["text_raw"].dtype.kind == "U" and all(len(t) > 3 for t in a["text_raw"])
        assert a["image"].dtype == np.uint8 and a["image"].shape == (n, *k, 3, 48, 48)
        assert a["regions"].dtype == np.float16 and a["regions"].shape == (n, *k, r, REGION_DIM)
        assert a["boxes"].dtype == np.float32 and a["boxes"].shape == (n, *k, r, 4)
        assert a["region_mask"].dtype == np.bool_ and a["region_mask"].shape == (n, *k, r)
        assert a["image_id"].dtype == np.int64 and a["image_id"].shape == (n, *k)
        mask, boxes = a["region_mask"], a["boxes"]
        assert mask.any(axis=-1).all()
        assert (a["regions"][~mask] == 0).all() and (boxes[~mask] == 0).all()
        real = boxes[mask]
        assert real.min() >= 0 and real.max() <= 1
        assert (real[:, 2] > real[:, 0]).all() and (real[:, 3] > real[:, 1]).all()
        assert a["regions"].min() >= 0 and a["regions"].max() <= 1
        if head == "pretrain":  # no label; region classes in the store
            assert "label" not in a and a["region_classes"].shape == (n, r, len(td.class_names))
            assert a["region_classes"].dtype == np.float32
            continue
        y = a["label"]
        if head == "vqa":
            assert y.dtype == np.float32 and y.shape == (n, len(td.class_names))
            assert a["answers"].dtype == np.int64 and a["answers"].shape == (n, 10)
            assert a["about_object"].dtype == np.int64 and a["about_object"].shape == (n,)
            assert (y.max(axis=1) == 1).all()
        elif head == "refexp":
            assert y.dtype == np.float32 and y.shape == (n, r)
            assert a["target_box"].dtype == np.float32 and a["target_box"].shape == (n, 4)
            assert a["target_object"].dtype == np.int64 and a["target_object"].shape == (n,)
        else:
            assert y.dtype == np.int64 and y.shape == (n,)
            if head == "retrieval":
                assert (y == 0).all()
                if split == "train":  # hard candidates into the same store, C = 12 (the default)
                    assert a["candidate_index"].shape == a["candidate_id"].shape == (n, 12)
                    assert a["candidate_index"].dtype == a["candidate_id"].dtype == np.int64
                    assert set(a) >= {"candidate_index", "candidate_id"} and "candidate_index" not in td.train.take([0])
                else:
                    assert "candidate_index" not in a
            else:
                assert y.min() >= 0 and y.max() < td.num_classes
        assert len(td.meta["extra"][split]) >= (1 if head != "retrieval" else 0)


def test_deterministic_and_seed_dependent(small):
    for name in VL_TASKS:
        again, other = build(name), build(name, seed=1)
        for split in SPLITS:
            a, b = small[name].split(split).columns(), again.split(split).columns()
            assert set(a) == set(b)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}/{split}/{key}")
        assert not np.array_equal(small[name].train.arrays["image_id"], other.train.arrays["image_id"])
        assert list(small[name].train.arrays["text_raw"]) != list(other.train.arrays["text_raw"])


@pytest.mark.parametrize("name", ["vqa", "coco-ir", "refcoco+", "nlvr"])
def test_rows_do_not_depend_on_split_sizes(small, name):
    short = build(name, n_train=9, n_val=5, n_test=3)
    for split, n in (("train", 9), ("val", 5), ("test", 3)):
        for key, value in short.split(split).columns().items():
            np.testing.assert_array_equal(value, small[name].split(split).column(key, slice(0, n)), err_msg=f"{split}/{key}")


@pytest.mark.parametrize("name", list(VL_TASKS))
def test_splits_disjoint_by_scene(small, name):
    ids = {s: set(small[name].split(s).arrays["image_id"].reshape(-1).tolist()) for s in SPLITS}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    first = small[name].train.arrays["image_id"].reshape(SIZES["train"], -1)[:, 0]
    assert len(set(first.tolist())) == len(first)  # one row per scene within a split


@pytest.mark.parametrize("name,k", [("nlvr", 2), ("snli-ve", 3)])
def test_classes_balanced(name, k):
    td = build(name, n_train=61, n_val=31, n_test=17)
    for split in SPLITS:
        counts = np.bincount(td.split(split).arrays["label"], minlength=k)
        assert counts.max() - counts.min() <= 1, (split, counts)


def test_question_kinds_balanced():
    td = build("vqa", n_train=100, n_val=0, n_test=0)
    kinds = td.meta["extra"]["train"]["kind"]
    counts = {k: int((kinds == k).sum()) for k in ("colour", "shape", "count", "yes", "no")}
    assert counts["yes"] == counts["no"] == 20 and min(counts.values()) >= 15, counts
    answers = np.asarray(VQA_ANSWERS)[td.train.arrays["label"].argmax(axis=1)]
    assert (answers == "yes").sum() == (answers == "no").sum() == 20


def test_cache_roundtrip_and_version_bump(tmp_path, monkeypatch):
    a = build("gqa", cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".npz", ".stores"] and files[0].name.startswith("vl-gqa-")
    assert sorted(p.name for p in files[1].iterdir()) == ["test-visual", "train-visual", "val-visual"]
    assert not a.meta["from_cache"] and a.meta["cache_path"] == str(files[0])
    b = build("gqa", cache_dir=tmp_path)
    assert b.meta["from_cache"] and b.train.stores["visual"].mapped  # reloaded memory-mapped
    for split in SPLITS:
        for key, value in a.split(split).columns().items():
            np.testing.assert_array_equal(value, b.split(split).column(key))
        for key, value in a.meta["extra"][split].items():
            np.testing.assert_array_equal(value, b.meta["extra"][split][key])
    monkeypatch.setattr(vl_build, "VL_GENERATOR_VERSION", vl_build.VL_GENERATOR_VERSION + 1)
    c = build("gqa", cache_dir=tmp_path)
    assert not c.meta["from_cache"] and c.meta["cache_path"] != a.meta["cache_path"]
    assert c.meta["generator_version"] == vl_build.VL_GENERATOR_VERSION
    assert len(list(tmp_path.iterdir())) == 4  # a new npz and its stores, no temp files left


def test_scene_for_vl_example(small):
    cases = [("vqa", "train", 3, 0), ("refcoco", "test", 5, 0), ("nlvr", "val", 2, 1), ("coco-ir", "train", 4, 2),
             ("snli-ve", "train", 7, 0)]
    for name, split, row, view in cases:
        scene = scene_for_vl_example(name, 0, split, row, image_size=48, view=view)
        a = small[name].split(split).columns()
        image_id = a["image_id"][row] if a["image_id"].ndim == 1 else a["image_id"][row, view]
        image = a["image"][row] if a["image"].ndim == 4 else a["image"][row, view]
        if name == "coco-ir" and view:  # a retrieval train row's view v: its v-th hard candidate
            image_id = a["candidate_id"][row, view - 1]
            image = small[name].train.stores["visual"].take([a["candidate_index"][row, view - 1]])["image"][0]
        assert scene.index == image_id
        np.testing.assert_array_equal(render_scene(scene), image)
    with pytest.raises(ValueError):
        scene_for_vl_example("vqa", 0, "train", 0, view=1)


def test_other_sizes_and_empty_splits():
    td = build_vl_world_task("refcoco", n_train=5, n_val=0, n_test=2, seed=0, cache_dir=None, image_size=32,
                             max_regions=36)
    assert td.train.column("regions").shape == (5, 36, REGION_DIM) and td.train.column("image").shape == (5, 3, 32, 32)
    assert td.val.arrays["label"].shape == (0, 36) and td.val.arrays["text_raw"].shape == (0,)
    nl = build_vl_world_task("nlvr", n_train=3, n_val=0, n_test=0, seed=0, cache_dir=None)
    assert nl.val.column("image").shape == (0, 2, 3, 48, 48)


def test_errors():
    with pytest.raises(ValueError, match="unknown V&L"):
        build("vqa2")
    with pytest.raises(ValueError, match="max_regions"):
        build("vqa", max_regions=4)
    with pytest.raises(ValueError, match="image_size"):
        build("vqa", image_size=16)
    with pytest.raises(ValueError, match="n_train"):
        build("vqa", n_train=-1)
