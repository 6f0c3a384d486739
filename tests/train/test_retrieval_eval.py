"""Retrieval evaluation of a pool: the pool and its cap, the two-stage ranking, the result and its lines."""

import numpy as np
import pytest
import torch
from test_pair_scoring import model, pool

from cotrain.config import RetrievalConfig
from cotrain.data.arrays import Split, TaskData
from cotrain.metrics.retrieval import recall_at_k, retrieval_ranks
from cotrain.pair_scoring import PairScorer
from cotrain.train.evaluate import evaluate_task, record_fields
from cotrain.train.retrieval_eval import pool_rows, rerank_order, reranked_ranks, retrieval_lines

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pool_rows_by_hand():
    captions, images, ci, total = pool_rows([5, 3, 5, 9, 3, 7])
    # distinct ids 3, 5, 7, 9 (sorted); first rows 1, 0, 5, 3
    np.testing.assert_array_equal(images, [1, 0, 5, 3])
    np.testing.assert_array_equal(ci, [1, 0, 1, 3, 0, 2])
    np.testing.assert_array_equal(captions, np.arange(6))
    assert total == 4


def test_the_test_pool_cap_keeps_images_with_all_their_captions_the_same_every_time():
    ids = np.repeat(np.arange(40) * 7, 3)[np.random.default_rng(1).permutation(120)]
    captions, images, ci, total = pool_rows(ids, cap=10)
    assert total == 40 and len(images) == 10 and len(captions) == 30  # 3 captions per kept image
    kept = ids[images]
    assert np.all(np.diff(kept) > 0)  # sorted by id, one row each
    np.testing.assert_array_equal(ids[captions], kept[ci])  # every caption points at its own image
    assert set(np.flatnonzero(np.isin(ids, kept))) == set(captions.tolist())  # and all of them are kept
    again = pool_rows(ids, cap=10)
    for a, b in zip((captions, images, ci), again[:3]):
        np.testing.assert_array_equal(a, b)
    assert len(pool_rows(ids, cap=40)[1]) == 40 and len(pool_rows(ids, cap=99)[0]) == 120  # no cap to apply


def test_rerank_order_by_hand():
    first = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    # top 2 by the first stage: columns 0 and 1; the full trunk prefers column 1; ties stay ties
    out = rerank_order(first, np.array([[0, 1]]), np.array([[0.1, 0.9]]))
    assert list(np.argsort(-out[0])) == [1, 0, 2, 3, 4]
    out = rerank_order(np.array([[1.0, 1.0, 0.0, 2.0]]), np.array([[3, 2]]), np.array([[-7.0, -7.0]]))
    assert out[0, 3] == out[0, 2] > out[0, 0] == out[0, 1]  # full-trunk tie on top, first-stage tie below


def _by_lists(first, full, k, ci):
    """Ranks from the lists written out: each query's top k by the first stage sorted by the full
    score, then the rest by the first stage (no ties in random scores)."""
    def rank(first_row, full_row, own):
        top = sorted(np.argsort(-first_row)[:k], key=lambda j: -full_row[j])
        rest = [j for j in np.argsort(-first_row) if j not in top]
        order = top + rest
        return min(order.index(j) for j in own)

    c2i = [rank(first[i], full[i], [ci[i]]) for i in range(len(ci))]
    i2c = [rank(first[:, j], full[:, j], np.flatnonzero(ci == j)) for j in range(first.shape[1])]
    return np.array(c2i), np.array(i2c)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_rerank_reorders_only_each_querys_top_k(k):
    m = model()
    text, visual = pool(nt=8, ni=5)
    ci = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    scorer = PairScorer(m, "coco", text, visual)
    full = scorer.all_pairs().double().numpy()
    first = np.random.default_rng(k).normal(size=full.shape)
    c2i, i2c, pairs = reranked_ranks(first, k, scorer, ci)
    want_c2i, want_i2c = _by_lists(first, full, k, ci)
    np.testing.assert_array_equal(c2i, want_c2i)
    np.testing.assert_array_equal(i2c, want_i2c)
    assert pairs <= 8 * k + 5 * k and pairs >= 8 * k  # each distinct pair through the full trunk once


def test_rerank_of_the_whole_pool_is_the_full_ranking():
    m = model()
    text, visual = pool(nt=8, ni=5)
    ci = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    scorer = PairScorer(m, "coco", text, visual)
    full_c2i, full_i2c = retrieval_ranks(scorer.all_pairs(), ci)
    first = np.random.default_rng(0).normal(size=(8, 5))
    c2i, i2c, _ = reranked_ranks(first, 5, scorer, ci)  # k = images: caption->image is the full ranking
    np.testing.assert_array_equal(c2i, full_c2i)
    c2i, i2c, pairs = reranked_ranks(first, 8, scorer, ci)  # k >= captions too: both directions
    np.testing.assert_array_equal(c2i, full_c2i)
    np.testing.assert_array_equal(i2c, full_i2c)
    assert pairs == 40


def split_of(nt=10, ni=4, seed=3):
    text, visual = pool(nt=nt, ni=ni)
    image_id = (np.arange(nt) % ni) * 10 + 100
    rows = np.arange(nt) % ni
    arrays = {"text": text["text"].numpy(), "image_id": image_id, "label": np.zeros(nt, dtype=np.int64),
              **{k: v.numpy()[rows] for k, v in visual.items()}}
    s = Split(arrays)
    return TaskData("coco", [], s, s, s, meta={"head_type": "retrieval"}), text, visual, rows


def test_the_result_gives_both_directions_the_pool_and_chance():
    m = model()
    data, text, visual, rows = split_of()
    r = evaluate_task(m, "coco", data, "recall", "val", batch_size=4)
    want = recall_at_k(PairScorer(m, "coco", text, visual).all_pairs(), rows)
    assert r["details"] == pytest.approx(want, abs=1e-5) and r["value"] == pytest.approx(want["c2i_r1"], abs=1e-5)
    assert r["pool"] == {"images": 4, "captions": 10} and r["chance"] == pytest.approx(0.25) and r["n"] == 10
    assert r["chance_details"]["c2i_r1"] == pytest.approx(0.25) and r["chance_details"]["i2c_r1"] == pytest.approx(0.25)
    assert r["chance_details"]["c2i_r5"] == 1.0 and r["scoring"] == "full trunk on every pair"
    assert r["pairs"] == 40 and r["pairs_per_s"] > 0 and r["eval_time_s"] >= 0 and "test_pool" not in r
    assert record_fields("coco", r) == {"coco/recall": round(r["value"], 5), "coco/pool_images": 4, "coco/pool_captions": 10}


def test_test_pool_and_rerank_are_named_in_the_result():
    m = model()
    data, *_ = split_of(nt=12, ni=6)
    cfg = RetrievalConfig(test_pool=3, rerank_top_k=2)
    r = evaluate_task(m, "coco", data, "recall", "test", batch_size=4, retrieval=cfg)
    assert r["pool"] == {"images": 3, "captions": 6} and r["test_pool"] == "3 of 6 images"
    assert r["scoring"] == "re-ranked top 2 of a pooled-state first stage"
    assert r["pairs"] <= 6 * 2 + 3 * 2
    val = evaluate_task(m, "coco", data, "recall", "val", batch_size=4, retrieval=cfg)  # the cap is for test only
    assert val["pool"] == {"images": 6, "captions": 12} and "test_pool" not in val


def test_lines_under_the_results_table():
    r = {"metric": "recall", "value": 0.25, "chance": 0.01, "n": 500, "pool": {"images": 100, "captions": 500},
         "details": {"c2i_r1": 0.25, "c2i_r5": 0.5, "c2i_r10": 0.75, "i2c_r1": 0.3, "i2c_r5": 0.6, "i2c_r10": 0.8},
         "chance_details": {"c2i_r1": 0.01, "c2i_r5": 0.05, "c2i_r10": 0.1, "i2c_r1": 0.01, "i2c_r5": 0.04901,
                            "i2c_r10": 0.09608},
         "scoring": "re-ranked top 20 of a pooled-state first stage", "pairs": 12000, "pairs_per_s": 30500.0,
         "eval_time_s": 1.5, "test_pool": "100 of 1391 images"}
    assert retrieval_lines("coco-ir", r) == [
        "coco-ir retrieval, pool 100 images x 500 captions (test_pool: 100 of 1391 images); re-ranked top 20 of a "
        "pooled-state first stage, 12,000 pairs at 30,500 pairs/s, 1.5 s:",
        "  caption->image R@1 0.250 | R@5 0.500 | R@10 0.750 (chance 0.010 | 0.050 | 0.100)",
        "  image->caption R@1 0.300 | R@5 0.600 | R@10 0.800 (chance 0.010 | 0.049 | 0.096)",
    ]
    from cotrain.train.trainer import format_results

    lines = format_results({"coco-ir": {**r, "steps": 10, "time_s": 2.0}}).splitlines()
    assert lines[2] == "| coco-ir |  | recall | 0.250 | 0.010 | 10 | 2.0 |"
    assert lines[3:] == [""] + retrieval_lines("coco-ir", r)
    assert retrieval_lines("old", {"metric": "recall", "value": 0.5, "chance": 0.1, "details": {"c2i_r1": 0.5}}) == []
