"""Offline hard-negative mining against a brute-force oracle: the model's own forward pass on every
(caption, image) pair, positives (own image, same words) never chosen, the shortlist honoured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_pair_scoring import model, pool, reference

from cotrain.data.arrays import Split
from cotrain.data.errors import DataError
from cotrain.data.stores import VisualStore
from cotrain.train.mining import mine_candidates, same_caption_columns

pytestmark = pytest.mark.usefixtures("one_thread")

# 9 captions over 6 images (ids 10, 20, ... 60); captions 0 and 7 have the same words but show
# images 10 and 40, so 40 is a positive of caption 0 and 10 one of caption 7
CAPTION_IMAGE = np.array([0, 1, 2, 3, 4, 5, 0, 3, 1])
IMAGE_IDS = np.array([10, 20, 30, 40, 50, 60])


def mining_split():
    text, visual = pool(nt=9, ni=6)
    t = text["text"].clone()
    t[7] = t[0]
    store = VisualStore({k: v.numpy() for k, v in visual.items()})
    arrays = {"text": t.numpy(), "image_id": IMAGE_IDS[CAPTION_IMAGE], "visual_index": CAPTION_IMAGE,
              "label": np.zeros(9, np.int64)}
    return Split(arrays, {"visual": store}), {"text": t}, visual


def positives(r: int) -> set[int]:
    same = [r] + ([7] if r == 0 else [0] if r == 7 else [])
    return {int(CAPTION_IMAGE[i]) for i in same}


def oracle_top(scores: np.ndarray, c: int, allowed=None) -> list[list[int]]:
    """Per caption, the pool columns of its c best non-positive images (among ``allowed``)."""
    out = []
    for r in range(len(scores)):
        cols = [j for j in range(scores.shape[1]) if j not in positives(r) and (allowed is None or j in allowed[r])]
        out.append(sorted(cols, key=lambda j: -scores[r, j])[:c])
    return out


def test_same_caption_columns_by_brute_force():
    rng = np.random.default_rng(0)
    text = rng.integers(0, 3, (40, 2))
    column = rng.integers(0, 7, 40)
    got = same_caption_columns(text, column)
    for r in range(40):
        want = sorted({int(column[i]) for i in range(40) if (text[i] == text[r]).all()})
        assert got[r].tolist() == want


def test_joint_mining_of_every_pair_is_the_models_own_top_non_positive_images():
    m = model()
    s, text, visual = mining_split()
    full = reference(m, text, visual).numpy()  # [9, 6]: the model's forward pass on each pair alone
    mined, report = mine_candidates(m, "coco", s, candidates=3, shortlist=None, chunk_size=5)
    want = oracle_top(full, 3)
    np.testing.assert_array_equal(mined.candidate_id, IMAGE_IDS[np.array(want)])
    np.testing.assert_allclose(mined.score, np.take_along_axis(full, np.array(want), 1), atol=1e-5)
    np.testing.assert_allclose(mined.own_score, full[np.arange(9), CAPTION_IMAGE], atol=1e-5)
    np.testing.assert_array_equal(mined.caption_image_id, IMAGE_IDS[CAPTION_IMAGE])
    assert report["pairs"] == 9 * 6 + 9  # every pair, then each caption with its own image
    assert report["same_caption_excluded"] == 2 and report["images"] == 6 and report["captions"] == 9
    assert report["overlap_with_data"] is None and report["shortlist"] is None
    assert report["own_first"] == pytest.approx(np.mean(full[np.arange(9), CAPTION_IMAGE] > mined.score[:, 0]), abs=1e-4)
    assert mined.metadata["scoring"] == "joint" and mined.metadata["shortlist"] == "all"
    # a shortlist as long as the pool gives the same
    again, _ = mine_candidates(m, "coco", s, candidates=3, shortlist=6)
    np.testing.assert_array_equal(again.candidate_id, mined.candidate_id)


def cosines(m, text, visual) -> np.ndarray:
    with torch.no_grad():
        t = F.normalize(m.pooled_single(text, "coco", "text"), dim=-1)
        v = F.normalize(m.pooled_single(visual, "coco", "regions"), dim=-1)
    return (t @ v.T).numpy()


def test_pooled_mining_and_a_shortlist_follow_the_first_stage():
    m = model()
    s, text, visual = mining_split()
    cos = cosines(m, text, visual)
    pooled, report = mine_candidates(m, "coco", s, candidates=2, scoring="pooled")
    np.testing.assert_array_equal(pooled.candidate_id, IMAGE_IDS[np.array(oracle_top(cos, 2))])
    np.testing.assert_allclose(pooled.score, np.take_along_axis(cos, np.array(oracle_top(cos, 2)), 1), atol=1e-5)
    assert report["pairs"] == 0 and pooled.metadata["scoring"] == "pooled"
    # joint with a shortlist of 3: the full trunk picks the best 2 among each caption's first-stage top 3
    full = reference(m, text, visual).numpy()
    joint, report = mine_candidates(m, "coco", s, candidates=2, shortlist=3)
    short = [set(x) for x in oracle_top(cos, 3)]
    np.testing.assert_array_equal(joint.candidate_id, IMAGE_IDS[np.array(oracle_top(full, 2, short))])
    assert report["pairs"] == 9 * 3 + 9 and report["shortlist"] == 3


def test_fewer_images_than_candidates_leave_empty_columns_and_the_model_mode_is_restored():
    m = model().train()
    s, _, _ = mining_split()
    mined, report = mine_candidates(m, "coco", s, candidates=10, shortlist=None)
    assert m.training and report["candidates"] == 5  # at most the other images
    # caption 0 has two positives (10 and 40) among 6 images: 4 candidates and one empty column
    assert (mined.candidate_id[0, :4] >= 0).all() and mined.candidate_id[0, 4] == -1 and np.isnan(mined.score[0, 4])
    assert not set(mined.candidate_id[0].tolist()) & {10, 40}
    assert (mined.candidate_id[1] >= 0).all()


def test_bad_requests_are_refused():
    m = model()
    s, _, _ = mining_split()
    with pytest.raises(ValueError, match="shortlist at least as long"):
        mine_candidates(m, "coco", s, candidates=4, shortlist=2)
    with pytest.raises(ValueError, match="unknown scoring 'dual'"):
        mine_candidates(m, "coco", s, scoring="dual")
    one = Split({**s.arrays, "image_id": np.full(9, 10), "visual_index": np.zeros(9, np.int64)}, s.stores)
    with pytest.raises(DataError, match="at least 2 distinct training images, got 1"):
        mine_candidates(m, "coco", one)
    with pytest.raises(DataError, match="one caption per row"):
        mine_candidates(m, "coco", Split({"text": np.ones((3, 2), np.int64)}))
