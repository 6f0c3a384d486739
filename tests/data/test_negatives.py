"""Retrieval training views: hard negatives re-drawn per epoch (or fixed), random in-batch negatives,
the batch gathered from the store, resumed iterators drawing alike."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_synthetic import C, M, N, split

from cotrain.config import ConfigError, RetrievalConfig, TaskConfig
from cotrain.data.arrays import BatchIterator, Split
from cotrain.data.errors import DataError
from cotrain.data.negatives import NegativeSampler, view_sampler


def test_views_are_the_true_image_then_distinct_candidates_gathered_from_the_store():
    s, rows = split(), np.arange(N)
    index, ids = NegativeSampler(3, "per_epoch").draw(s, rows, seed=0, epoch=0, batch=0)
    assert index.shape == ids.shape == (N, 4)
    assert (index[:, 0] == rows).all() and (ids == 100 + index).all()
    for r in rows:
        hard = index[r, 1:].tolist()
        assert len(set(hard)) == 3 and set(hard) <= set(s.arrays["candidate_index"][r].tolist()) and r not in hard
    batch = NegativeSampler(3, "per_epoch").take(s, rows, seed=0, epoch=0, batch=0)
    assert batch["regions"].shape == (N, 4, 2, 3) and batch["region_mask"].shape == (N, 4, 2)
    assert (batch["regions"][:, :, 0, 0].numpy() == index).all()  # store row j holds j
    assert (batch["image_id"].numpy() == ids).all() and batch["text"].shape == (N, 4)
    assert "candidate_index" not in batch and "visual_index" not in batch


def test_per_epoch_negatives_change_between_epochs_and_repeat_for_the_same_epoch_and_seed():
    s, rows = split(), np.arange(N)
    sampler = NegativeSampler(3, "per_epoch")
    e0 = sampler.draw(s, rows, seed=5, epoch=0, batch=0)[0]
    np.testing.assert_array_equal(e0, sampler.draw(s, rows, seed=5, epoch=0, batch=3)[0])  # same epoch and seed
    e1 = sampler.draw(s, rows, seed=5, epoch=1, batch=0)[0]
    assert (np.sort(e0[:, 1:], axis=1) != np.sort(e1[:, 1:], axis=1)).any(axis=1).sum() >= N // 2
    other_seed = sampler.draw(s, rows, seed=6, epoch=0, batch=0)[0]
    assert (other_seed != e0).any()
    # a row draws the same in any batch of the epoch: by (seed, epoch, row), not by its neighbours
    alone = sampler.draw(s, np.array([3, 7]), seed=5, epoch=0, batch=9)[0]
    np.testing.assert_array_equal(alone, e0[[3, 7]])
    # over epochs every candidate turns up
    seen = np.concatenate([sampler.draw(s, rows, seed=5, epoch=e, batch=0)[0][:, 1:] for e in range(30)], axis=1)
    assert all(set(seen[r].tolist()) == set(s.arrays["candidate_index"][r].tolist()) for r in rows)


def test_fixed_mining_takes_the_first_candidates_every_epoch():
    s, rows = split(), np.arange(N)
    sampler = NegativeSampler(3, "fixed")
    for epoch in range(4):
        index = sampler.draw(s, rows, seed=epoch, epoch=epoch, batch=epoch)[0]
        np.testing.assert_array_equal(index[:, 1:], s.arrays["candidate_index"][:, :3])


@pytest.mark.parametrize("duplicates", [False, True])
def test_random_negatives_are_other_images_of_the_same_batch(duplicates):
    s = split(duplicates=duplicates)
    rows = np.array([0, 1, 2, 3, 8, 9])
    sampler = NegativeSampler(2, "fixed", random_negatives=2)
    assert sampler.views == 5
    draws = []
    for batch in range(6):
        index, ids = sampler.draw(s, rows, seed=1, epoch=0, batch=batch)
        own = s.arrays["image_id"][rows]
        for b in range(len(rows)):
            assert set(ids[b, 3:].tolist()) <= set(own.tolist()) - {own[b]}  # another row's image, never its own
            assert len(set(ids[b, 3:].tolist())) == 2  # without replacement while the batch has enough
            np.testing.assert_array_equal(index[b, 3:], s.arrays["visual_index"][rows][np.searchsorted(own, ids[b, 3:])])
        draws.append(ids[:, 3:])
    assert any((d != draws[0]).any() for d in draws[1:])  # drawn per batch
    np.testing.assert_array_equal(sampler.draw(s, rows, seed=1, epoch=0, batch=4)[1][:, 3:], draws[4])


def test_masked_candidates_are_never_drawn_and_shortfalls_come_from_the_batch():
    s = split()
    cand, ids = s.arrays["candidate_index"].copy(), s.arrays["candidate_id"].copy()
    cand[:, 1:] = -1  # the clean split removed all but the first candidate
    ids[:, 1:] = -1
    s = Split({**s.arrays, "candidate_index": cand, "candidate_id": ids}, s.stores)
    rows = np.array([0, 5, 6])
    index, got = NegativeSampler(3, "per_epoch").draw(s, rows, seed=0, epoch=2, batch=0)
    assert (index >= 0).all() and (got >= 0).all()
    assert (index[:, 1] == cand[rows, 0]).all()  # the one usable candidate
    for b, r in enumerate(rows):
        assert set(index[b, 2:].tolist()) <= set(rows.tolist()) - {r}  # then other captions' images
    with pytest.raises(DataError, match="no negative image"):
        NegativeSampler(3, "per_epoch").draw(Split({**s.arrays, "candidate_index": np.full((N, C), -1),
                                                    "candidate_id": np.full((N, C), -1)}, s.stores),
                                             np.array([4]), seed=0, epoch=0, batch=0)


def test_batch_iterator_with_the_sampler_resumes_alike():
    s = split()
    sampler = NegativeSampler(2, "per_epoch", random_negatives=1)
    it = BatchIterator(s, 5, seed=3, views=sampler)
    for _ in range(3):  # into epoch 1
        next(it)
    state = it.state_dict()
    want = [next(it) for _ in range(4)]
    again = BatchIterator(s, 5, seed=3, views=sampler)
    again.load_state_dict(state)
    for a, b in zip(want, (next(again) for _ in range(4))):
        assert a.keys() == b.keys() and a["regions"].shape == (5, 4, 2, 3)
        for k in a:
            assert (a[k] == b[k]).all()


def test_view_sampler_from_the_task_config():
    task = TaskConfig(name="ir", source={"kind": "world", "name": "coco-ir"},
                      retrieval=RetrievalConfig(negatives=2, mining="fixed", random_negatives=1))
    sampler = view_sampler(split(), task)
    assert (sampler.negatives, sampler.mining, sampler.random_negatives) == (2, "fixed", 1)
    plain = Split({k: v for k, v in split().arrays.items() if not k.startswith("candidate")}, split().stores)
    assert view_sampler(plain, task) is None
    too_many = task.model_copy(update={"retrieval": RetrievalConfig(negatives=C + 1)})
    with pytest.raises(ConfigError, match=r"tasks\[ir\]\.retrieval\.negatives is 7 .* keeps 6"):
        view_sampler(split(), too_many)


def test_split_checks_the_candidates():
    s = split()
    with pytest.raises(IndexError, match="candidate_index"):
        Split({**s.arrays, "candidate_index": s.arrays["candidate_index"] + M}, s.stores)
    with pytest.raises(ValueError, match="both int"):
        Split({k: v for k, v in s.arrays.items() if k != "candidate_id"}, s.stores)
