"""Carving val / test out of a V&L source's train records by image (cotrain.data.formats.vl.splits)."""

from __future__ import annotations

import random

import pytest

from cotrain.data.formats.splits import split_counts
from cotrain.data.formats.vl.records import CaptionRecord, PairRecord, VQARecord
from cotrain.data.formats.vl.splits import carve_by_image, image_groups, record_images


def _vqa(n_images=100):
    """Image i (ints, and a few GQA-style string keys) has 1 + i % 5 questions."""
    return [VQARecord(f"{i}-{j}", i if i % 7 else f"n{i}", f"q {j} of {i}", ["a"], split="train")
            for i in range(n_images) for j in range(1 + i % 5)]


def _split_of_image(parts):
    """image key -> set of splits it appears in, and a brute-force disjointness oracle."""
    seen: dict = {}
    for s, recs in parts.items():
        for r in recs:
            for k in record_images(r):
                seen.setdefault(k, set()).add(s)
    return seen


def test_carve_is_a_partition_disjoint_by_image_with_the_requested_counts():
    recs = _vqa()
    carved = carve_by_image(recs, val_fraction=0.2, test_fraction=0.15, seed=3)
    parts = carved.records
    assert sorted(r.question_id for s in parts for r in parts[s]) == sorted(r.question_id for r in recs)
    assert all(len(splits) == 1 for splits in _split_of_image(parts).values())  # no image in two splits
    n_train, n_val, n_test = split_counts(100, 0.2, 0.15)
    assert carved.groups == {"train": n_train, "val": n_val, "test": n_test} == {"train": 65, "val": 20, "test": 15}
    assert len({r.image_id for r in parts["val"]}) == 20 and len({r.image_id for r in parts["test"]}) == 15
    assert all(r.split == s for s in parts for r in parts[s])
    assert all(r.split == "train" for r in recs)  # the input records are not changed
    order = {r.question_id: i for i, r in enumerate(recs)}
    assert all([order[r.question_id] for r in parts[s]] == sorted(order[r.question_id] for r in parts[s]) for s in parts)


def test_carve_depends_on_the_seed_not_the_record_order():
    recs = _vqa()
    images = lambda parts, s: {r.image_id for r in parts[s]}  # noqa: E731
    a = carve_by_image(recs, val_fraction=0.2, test_fraction=0.1, seed=0).records
    shuffled = recs[:]
    random.Random(1).shuffle(shuffled)
    b = carve_by_image(shuffled, val_fraction=0.2, test_fraction=0.1, seed=0).records
    c = carve_by_image(recs, val_fraction=0.2, test_fraction=0.1, seed=1).records
    assert images(a, "val") == images(b, "val") and images(a, "test") == images(b, "test")
    assert images(a, "val") != images(c, "val") and images(a, "test") != images(c, "test")
    only_val = carve_by_image(recs, val_fraction=0.2, test_fraction=0.0, seed=0)
    assert only_val.records["test"] == [] and only_val.groups["val"] == 20


def test_nlvr2_pairs_group_by_image_set_and_shared_images_merge():
    pairs = [PairRecord(f"train-{s}-{p}-{k}", (f"train-{s}-{p}-img0", f"train-{s}-{p}-img1"), "x", 1, "train")
             for s in range(3) for p in range(2) for k in range(2)]
    group, names = image_groups(pairs)
    assert names == ["train-0", "train-1", "train-2"]  # one group per image set, named by the set
    assert group.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    other = [PairRecord("a", (1, 2), "x", 0), PairRecord("b", (2, 3), "x", 0), PairRecord("c", (4, 5), "x", 0)]
    assert image_groups(other)[0].tolist() == [0, 0, 1]  # rows sharing image 2 join one group
    caps = [CaptionRecord("000000000007", "c", None), CaptionRecord(7, "d", None), CaptionRecord(8, "e", None)]
    group, names = image_groups(caps)
    assert group.tolist() == [0, 0, 1] and names == ["7", "8"]  # keys compared normalised


def test_too_few_images_leave_a_split_empty_and_fractions_are_checked():
    one = [VQARecord(i, 5, "q", ["a"]) for i in range(4)]
    carved = carve_by_image(one, val_fraction=0.5, test_fraction=0.3, seed=0)
    assert len(carved.records["train"]) == 4 and carved.groups == {"train": 1, "val": 0, "test": 0}
    with pytest.raises(ValueError, match="val_fraction"):
        carve_by_image(one, val_fraction=1.0, test_fraction=0.0, seed=0)
