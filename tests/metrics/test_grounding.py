import math

import numpy as np
import pytest

from cotrain.metrics.grounding import grounding_consistency, pair_records

QUESTIONS = [
    {"image_id": 1, "question_id": "q0", "correct": True, "concepts": ["dog", "large", "brown"]},
    {"image_id": 1, "question_id": "q1", "correct": False, "concepts": ["cat"]},
    {"image_id": 2, "question_id": "q2", "correct": 0.6, "concepts": ["man", "hat"]},
    {"image_id": 3, "question_id": "q3", "correct": True, "concepts": ["tree"]},  # no expression on image 3
]
REFEXPS = [
    {"image_id": 1, "ref_id": "r0", "localised": True, "concepts": ["dog", "large"]},
    {"image_id": 1, "ref_id": "r1", "localised": False, "concepts": ["cat", "white", "dog"]},
    {"image_id": 1, "ref_id": "r2", "localised": True, "concepts": ["car"]},
    {"image_id": 2, "ref_id": "r3", "localised": True, "concepts": ["man", "red", "hat"]},
    {"image_id": 4, "ref_id": "r4", "localised": True, "concepts": ["tree"]},  # no question on image 4
]


def test_pairs_by_hand():
    pairs = pair_records(QUESTIONS, REFEXPS)
    got = {(p["question_id"], p["ref_id"]): p["overlap"] for p in pairs}
    assert got == {("q0", "r0"): 2, ("q0", "r1"): 1, ("q0", "r2"): 0,
                   ("q1", "r0"): 0, ("q1", "r1"): 1, ("q1", "r2"): 0,
                   ("q2", "r3"): 2}  # only same-image pairs; q3 and r4 have no partner
    first = pairs[0]
    assert first == {"image_id": 1, "question_id": "q0", "ref_id": "r0", "correct": True, "localised": True,
                     "overlap": 2}


def test_consistency_by_hand():
    # weighted pairs (d, correct, localised): (2, 1, 1) (1, 1, 0) (1, 0, 0) (2, 0.6, 1); total d = 6
    out = grounding_consistency(pair_records(QUESTIONS, REFEXPS))
    assert out["consistency"] == pytest.approx((2 + 0 + 0 + 1.2) / 6)
    assert out["localised_given_correct"] == pytest.approx(3.2 / 4.2)  # sum d*c = 2 + 1 + 0 + 1.2
    assert out["question_accuracy"] == pytest.approx(4.2 / 6)
    assert out["localised_rate"] == pytest.approx(4 / 6)
    assert (out["pairs"], out["weighted_pairs"], out["images"]) == (7, 4, 2)
    assert out["total_weight"] == 6


def test_pairs_without_shared_concepts_do_not_count():
    records = pair_records(QUESTIONS, REFEXPS)
    base = grounding_consistency(records)
    flipped = [{**r, "correct": not r["correct"], "localised": not r["localised"]} if r["overlap"] == 0 else r
               for r in records]
    assert grounding_consistency(flipped)["consistency"] == base["consistency"]


def test_weight_is_the_overlap_not_a_pair_count():
    records = [
        {"image_id": 1, "correct": True, "localised": True, "overlap": 3},
        {"image_id": 1, "correct": True, "localised": False, "overlap": 1},
    ]
    assert grounding_consistency(records)["consistency"] == pytest.approx(0.75)  # unweighted would be 0.5
    # any weighting can be passed directly, e.g. an IoU
    records[1]["overlap"] = 0.5
    assert grounding_consistency(records)["consistency"] == pytest.approx(3 / 3.5)


def test_joint_is_not_conditional():
    records = [
        {"image_id": 1, "correct": False, "localised": True, "overlap": 1},
        {"image_id": 2, "correct": True, "localised": True, "overlap": 1},
    ]
    out = grounding_consistency(records)
    assert out["consistency"] == 0.5  # a wrong answer fails the pair
    assert out["localised_given_correct"] == 1.0


def test_numpy_values_and_no_weighted_pairs():
    records = [{"image_id": np.int64(5), "correct": np.float32(1.0), "localised": np.bool_(True), "overlap": np.int64(2)}]
    assert grounding_consistency(records)["consistency"] == 1.0
    out = grounding_consistency([{**records[0], "overlap": 0}])
    assert math.isnan(out["consistency"]) and out["pairs"] == 1 and out["weighted_pairs"] == 0
    assert math.isnan(grounding_consistency([])["consistency"])


def test_errors_name_the_bad_value():
    good = {"image_id": 1, "correct": True, "localised": True, "overlap": 1}
    with pytest.raises(ValueError, match="record 1 lacks \\['overlap'\\]"):
        grounding_consistency([good, {"image_id": 1, "correct": True, "localised": True}])
    with pytest.raises(ValueError, match="overlap must be >= 0, got -1"):
        grounding_consistency([{**good, "overlap": -1}])
    with pytest.raises(ValueError, match="accuracy in \\[0, 1\\], got 1.5"):
        grounding_consistency([{**good, "correct": 1.5}])
    with pytest.raises(ValueError, match="localised must be a bool, got 'yes'"):
        grounding_consistency([{**good, "localised": "yes"}])
    with pytest.raises(ValueError, match="record 0 overlap must be finite, got nan"):
        grounding_consistency([{**good, "overlap": float("nan")}])
    with pytest.raises(ValueError, match="question 0 lacks \\['concepts'\\]"):
        pair_records([{"image_id": 1, "correct": True}], REFEXPS)
