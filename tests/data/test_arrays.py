"""Split with stores (per-image arrays kept once, gathered through an index), unlabeled and ragged splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cotrain.data.arrays import BatchIterator, Split, batch_to, iterate_once
from cotrain.data.ragged import Ragged
from cotrain.data.stores import VisualStore, stack_store

R, F = 4, 6


def _store(m: int) -> VisualStore:
    rng = np.random.default_rng(0)
    return stack_store({"regions": rng.random((m, R, F), dtype=np.float32),
                        "boxes": rng.random((m, R, 4), dtype=np.float32), "region_mask": rng.random((m, R)) < 0.7})


def test_ten_questions_about_one_image_share_its_one_stored_row():
    store = _store(1)
    rows = {"text": np.arange(10 * 3).reshape(10, 3), "label": np.arange(10), "visual_index": np.zeros(10, np.int64)}
    split = Split(rows, {"visual": store})
    assert len(split) == 10 and len(store) == 1  # M = 1 stored copy whatever N is
    assert store.nbytes == R * F * 2 + R * 4 * 4 + R  # one image: float16 regions, float32 boxes, bool mask
    batch = split.take(np.array([0, 3, 9]))
    assert batch["regions"].shape == (3, R, F) and batch["regions"].dtype == torch.float16
    for row in range(3):
        np.testing.assert_array_equal(batch["regions"][row].numpy(), store.arrays["regions"][0])
    assert "visual_index" not in batch and batch["label"].tolist() == [0, 3, 9]


def test_take_with_views_matches_the_per_row_layout():
    store = _store(5)
    index = np.array([[0, 3], [4, 4], [2, 1]])  # [N, K]: two images per example
    split = Split({"label": np.zeros(3, np.int64), "visual_index": index, "text_raw": np.array(["a", "b", "c"])},
                  {"visual": store})
    old = {k: v[index] for k, v in store.arrays.items()}  # the per-record copies the split no longer holds
    batch = split.take(np.array([2, 0]))
    assert set(batch) == {"label", "regions", "boxes", "region_mask"}  # strings and store indexes stay out
    for key in old:
        np.testing.assert_array_equal(batch[key].numpy(), old[key][[2, 0]])
    assert batch["regions"].shape == (2, 2, R, F) and batch["region_mask"].shape == (2, 2, R)
    cols = split.columns()
    assert set(cols) == {"label", "text_raw", "regions", "boxes", "region_mask"}
    np.testing.assert_array_equal(cols["boxes"], old["boxes"])
    np.testing.assert_array_equal(split.column("region_mask", [1]), old["region_mask"][[1]])
    assert "regions" in split and "visual_index" in split and "image" not in split
    assert split.keys() == ["label", "visual_index", "text_raw", "regions", "boxes", "region_mask"]


def test_take_gathers_given_views_instead_of_the_rows_own_index():
    store = _store(5)
    split = Split({"label": np.arange(3), "visual_index": np.array([0, 1, 2]),
                   "candidate_index": np.array([[3, 4], [4, -1], [0, 1]]), "candidate_id": np.array([[3, 4], [4, -1], [0, 1]])},
                  {"visual": store})
    views = np.array([[1, 3, 4], [2, 0, 0]])  # [B, K] store rows chosen by a view sampler
    batch = split.take(np.array([1, 2]), views={"visual": views})
    np.testing.assert_array_equal(batch["regions"].numpy(), store.arrays["regions"][views].astype(np.float16))
    assert batch["label"].tolist() == [1, 2] and not {"candidate_index", "candidate_id", "visual_index"} & set(batch)
    with pytest.raises(KeyError, match="views name stores"):
        split.take(np.array([0]), views={"pixels": views})


def test_subset_keeps_the_stores():
    store = _store(3)
    split = Split({"label": np.arange(4), "visual_index": np.array([2, 0, 2, 1])}, {"visual": store})
    sub = split.subset(np.array([True, False, True, True]))
    assert sub.stores["visual"] is store and len(sub) == 3
    np.testing.assert_array_equal(sub.column("boxes"), store.arrays["boxes"][[2, 2, 1]])


def test_a_split_refuses_a_store_it_cannot_reference():
    store = _store(2)
    with pytest.raises(ValueError, match="store 'visual' needs its index array 'visual_index'"):
        Split({"label": np.arange(2)}, {"visual": store})
    with pytest.raises(IndexError, match=r"split array 'visual_index' holds \[2\]"):
        Split({"label": np.arange(2), "visual_index": np.array([0, 2])}, {"visual": store})
    with pytest.raises(ValueError, match="store 'visual' holds 'boxes', which a row array"):
        Split({"label": np.arange(2), "visual_index": np.array([0, 1]), "boxes": np.zeros((2, R, 4))},
              {"visual": store})
    with pytest.raises(KeyError, match="'image' is neither"):
        Split({"label": np.arange(2), "visual_index": np.array([0, 1])}, {"visual": store}).column("image")


def test_unlabeled_split_iterates():
    split = Split({"text": np.arange(14).reshape(7, 2), "visual_index": np.arange(7) % 2}, {"visual": _store(2)})
    assert len(split) == 7 and "label" not in split
    it = BatchIterator(split, 3, seed=0)
    seen = [next(it) for _ in range(4)]  # crosses an epoch boundary
    assert all(set(b) == {"text", "regions", "boxes", "region_mask"} and len(b["text"]) == 3 for b in seen)
    rows = torch.cat([b["text"][:, 0] // 2 for b in iterate_once(split, 3)])
    assert rows.tolist() == list(range(7))
    with pytest.raises(ValueError, match="at least one per-row array"):
        Split({})


def test_ragged_targets_become_a_list_of_tensors_per_batch():
    boxes = Ragged.from_rows([np.ones((2, 4)), np.zeros((0, 4)), np.full((3, 4), 2.0)], dtype=np.float32,
                             row_shape=(4,))
    classes = Ragged.from_rows([[1, 2], [], [0, 0, 5]], dtype=np.int64)
    split = Split({"image": np.zeros((3, 3, 8, 8), np.uint8), "target_boxes": boxes, "target_classes": classes})
    batch = split.take(np.array([2, 1]))
    assert isinstance(batch["target_boxes"], list)
    assert [tuple(t.shape) for t in batch["target_boxes"]] == [(3, 4), (0, 4)]
    assert batch["target_classes"][0].tolist() == [0, 0, 5] and batch["target_classes"][1].dtype == torch.int64
    assert batch["image"].shape == (2, 3, 8, 8)
    sub = split.subset(np.array([0, 2]))
    assert sub.arrays["target_classes"].lengths().tolist() == [2, 3]
    moved = batch_to(batch, "cpu")
    assert isinstance(moved["target_boxes"], list) and torch.equal(moved["target_boxes"][0], batch["target_boxes"][0])
    with pytest.raises(ValueError, match="differ in length"):
        Split({"image": np.zeros((2, 3, 8, 8), np.uint8), "target_classes": classes})
