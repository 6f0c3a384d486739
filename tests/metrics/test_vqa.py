import numpy as np
import pytest
import torch

from cotrain.metrics.vqa import (
    VQA_VERSIONS,
    normalize_answer,
    process_punctuation,
    soft_scores,
    vqa_accuracy,
    vqa_accuracy_from_ids,
    vqa_accuracy_single,
    vqa_scores,
    vqa_scores_from_ids,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Yes.", "yes"),  # trailing period stripped (not followed by a digit), lowercased
        ("1,000", "1000"),  # digit-comma-digit: every punctuation mark is deleted, not spaced
        ("1,000 ft-long", "1000 ftlong"),  # ... including the hyphen elsewhere in the text
        ("hot-dog", "hot dog"),  # a glued hyphen becomes a space
        ("hot - dog", "hot dog"),  # a hyphen touching a space is deleted; split/join squeezes spaces
        ("2.5", "2.5"),  # a period before a digit stays
        ("3.14.", "3.14"),
        ("a.b", "ab"),
        ("yes!", "yes"),
        ("(yes)", "yes"),
        ("\tyes\n", "yes"),
        ("the dog", "dog"),  # articles dropped
        ("A Dog", "dog"),
        ("an apple", "apple"),
        ("two", "2"),  # number words -> digits
        ("None", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),  # the map stops at ten
        ("dont", "don't"),  # contractions table
        ("isnt it", "isn't it"),
        ("Im", "im"),  # the official key "Im" is capitalised and never matches lowercased words
        ("don't", "don't"),  # the apostrophe is not in the punctuation list
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_period_strip_count_is_32():
    # the official code passes re.UNICODE (32) as Pattern.sub's count: only 32 periods go
    assert process_punctuation("a" + "." * 40) == "a" + "." * 8


# leave-one-out by hand, c = annotators agreeing with the prediction out of 10:
#   a matching annotator left out leaves c - 1 agreeing, a non-matching one leaves c.
#   c=1: (1*min(1,0/3) + 9*min(1,1/3)) / 10 = 3/10        = 0.3
#   c=2: (2*(1/3)      + 8*(2/3))      / 10 = (2+16)/30   = 0.6
#   c=3: (3*(2/3)      + 7*1)          / 10 = (2+7)/10    = 0.9
#   c=4: (4*1          + 6*1)          / 10               = 1.0
@pytest.mark.parametrize("c, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)])
@pytest.mark.parametrize("version", VQA_VERSIONS)
def test_leave_one_out(c, expected, version):
    gt = ["cat"] * c + ["dog"] * (10 - c)
    assert vqa_accuracy_single("cat", gt, version) == pytest.approx(expected)


# The revisions by hand (x100). official = vqaEval.py since a013f00: whitespace-cleaned; both sides
# normalised only when the 10 answers disagree. legacy = before a013f00: the prediction always fully
# normalised, the annotators' answers punctuation-only and only when they disagree. always_normalise:
# both sides always fully normalised.
#   ten "2" vs "2.":  official: unanimous -> raw "2." != "2" -> 0.  legacy: "2." -> "2", c = 10 -> 100.
#                     always: "2" vs ten "2" -> 100.
#   ten "yes" vs "Yes": official: "Yes" != "yes" -> 0.  legacy: "Yes" -> "yes" -> 100.  always: 100.
#   nine "two" + one "2" vs "2": official: disagree -> "two" -> "2", c = 10 -> 100.  legacy: the
#                     annotators' "two" stays "two" (punctuation only), c = 1 -> 30.  always: 100.
#   three "none" + seven "no" vs "none": official: "none" -> "0" on both sides, c = 3 -> 90.
#                     legacy: prediction "0", annotators keep "none", c = 0 -> 0.  always: c = 3 -> 90.
#   ten "red" vs "red": 100 in all three.
HAND_WORKED = [
    # pred, gt, official, legacy, always_normalise
    ("2.", ["2"] * 10, 0.0, 1.0, 1.0),
    ("Yes", ["yes"] * 10, 0.0, 1.0, 1.0),
    ("2", ["two"] * 9 + ["2"], 1.0, 0.3, 1.0),
    ("none", ["none"] * 3 + ["no"] * 7, 0.9, 0.0, 0.9),
    ("red", ["red"] * 10, 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("pred, gt, official, legacy, always", HAND_WORKED)
def test_versions_hand_worked(pred, gt, official, legacy, always):
    assert vqa_accuracy_single(pred, gt, "official") == pytest.approx(official)
    assert vqa_accuracy_single(pred, gt, "legacy") == pytest.approx(legacy)
    assert vqa_accuracy_single(pred, gt, "always_normalise") == pytest.approx(always)


def test_official_is_the_default():
    assert VQA_VERSIONS[0] == "official"
    assert vqa_accuracy_single("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy(["Yes"], [["yes"] * 10]) == 0.0


@pytest.mark.parametrize(
    "pred, gt, official, legacy, always",
    [
        # all ten identical: official compares the raw (whitespace-cleaned) strings, always normalises,
        # legacy normalises the prediction only
        ("two", ["2"] * 10, 0.0, 1.0, 1.0),
        ("the dog", ["dog"] * 10, 0.0, 1.0, 1.0),
        ("dont", ["don't"] * 10, 0.0, 1.0, 1.0),
        ("1,000", ["1000"] * 10, 0.0, 1.0, 1.0),
        ("yes", ["Yes"] * 10, 0.0, 0.0, 1.0),  # the gt side is normalised by always_normalise only
        ("2", ["two"] * 10, 0.0, 0.0, 1.0),
        (" yes\n", ["yes"] * 10, 1.0, 1.0, 1.0),  # the prediction's whitespace is cleaned in all three
        ("yes", [" yes"] * 10, 1.0, 0.0, 1.0),  # legacy never cleans the annotators' whitespace
        ("yes", ["yes"] * 10, 1.0, 1.0, 1.0),
        # the answers disagree: official normalises both sides too, legacy the gt's punctuation only
        ("Yes", ["yes"] * 9 + ["no"], 1.0, 1.0, 1.0),  # c = 9
        ("two", ["2"] * 3 + ["3"] * 7, 0.9, 0.9, 0.9),  # c = 3
        ("dont", ["don't"] * 4 + ["no"] * 6, 1.0, 1.0, 1.0),  # c = 4
        ("yes.", ["yes"] * 2 + ["no"] * 8, 0.6, 0.6, 0.6),  # c = 2
        ("yes", ["yes."] * 2 + ["no"] * 8, 0.6, 0.6, 0.6),  # legacy strips the gt's periods too
        # ... but a glued "!" becomes a space that legacy never strips from the gt: "yes " != "yes"
        ("yes", ["yes!"] * 2 + ["no"] * 8, 0.6, 0.0, 0.6),
        ("yes", ["Yes"] * 5 + ["yes"] * 5, 1.0, 1.0, 1.0),  # legacy: the five "yes" give c = 5
        ("yes", ["Yes"] * 7 + ["yes"] * 3, 1.0, 0.9, 1.0),  # legacy: "Yes" keeps its capital, c = 3
        ("the dog", ["a dog", "dog", "the dog"] + ["cat"] * 7, 0.9, 0.3, 0.9),  # legacy: only "dog" matches
    ],
)
def test_versions(pred, gt, official, legacy, always):
    assert vqa_accuracy_single(pred, gt, "official") == pytest.approx(official)
    assert vqa_accuracy_single(pred, gt, "legacy") == pytest.approx(legacy)
    assert vqa_accuracy_single(pred, gt, "always_normalise") == pytest.approx(always)


def test_vqa_accuracy_mean_and_errors():
    preds = ["Yes", "two", "cat"]
    gt = [["yes"] * 10, ["2"] * 2 + ["3"] * 8, ["dog"] * 10]
    assert vqa_accuracy(preds, gt) == pytest.approx((0.0 + 0.6 + 0.0) / 3)
    assert vqa_accuracy(preds, gt, version="always_normalise") == pytest.approx((1.0 + 0.6 + 0.0) / 3)
    np.testing.assert_allclose(vqa_scores(preds, gt, version="legacy"), [1.0, 0.6, 0.0])
    with pytest.raises(ValueError, match="official, legacy, always_normalise"):
        vqa_accuracy(preds, gt, version="current")
    with pytest.raises(ValueError, match="official, legacy, always_normalise"):
        vqa_accuracy_single("yes", ["yes"] * 10, version="pre2021")
    with pytest.raises(ValueError, match="length"):
        vqa_accuracy(preds[:2], gt)
    with pytest.raises(ValueError, match="empty"):
        vqa_accuracy([], [])
    with pytest.raises(ValueError, match="sequence"):
        vqa_accuracy_single("yes", "yes")
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy_single("yes", ["yes"])


def test_from_ids_by_hand():
    answer_ids = np.array([[5] * 3 + [1] * 7, [-1] * 10, [2] * 10, [4, 4] + [-1] * 8])
    pred = np.array([5, -1, 2, 4])
    # c=3 -> 0.9; -1 never matches, even a predicted -1 -> 0; GQA-style repeated id -> 1; c=2 -> 0.6
    np.testing.assert_allclose(vqa_scores_from_ids(pred, answer_ids), [0.9, 0.0, 1.0, 0.6])
    assert vqa_accuracy_from_ids(pred, answer_ids) == pytest.approx(2.5 / 4)
    assert vqa_accuracy_from_ids(torch.from_numpy(pred), torch.from_numpy(answer_ids)) == pytest.approx(2.5 / 4)
    logits = np.full((4, 6), -1.0)
    logits[np.arange(4), [5, 0, 2, 4]] = 3.0  # scores [N, A]: argmax taken
    np.testing.assert_allclose(vqa_scores_from_ids(logits, answer_ids), [0.9, 0.0, 1.0, 0.6])
    with pytest.raises(ValueError, match="answer_ids"):
        vqa_accuracy_from_ids(pred, answer_ids[:, :1])
    with pytest.raises(ValueError, match="pred_ids"):
        vqa_accuracy_from_ids(pred[:3], answer_ids)


def test_from_ids_matches_strings():
    rng = np.random.default_rng(0)
    vocab = ["yes", "no", "2", "red", "dog", "don't"]
    answer_ids = rng.integers(-1, len(vocab), size=(200, 10))
    answer_ids[:20] = answer_ids[:20, :1]  # some unanimous rows
    pred = rng.integers(0, len(vocab), size=200)
    gt = [[vocab[i] if i >= 0 else "<unk-%d>" % j for j, i in enumerate(row)] for row in answer_ids]
    strings = [vqa_accuracy_single(vocab[p], g, "always_normalise") for p, g in zip(pred, gt)]
    np.testing.assert_allclose(vqa_scores_from_ids(pred, answer_ids), strings)


def test_soft_scores():
    ids = np.array([[0, 0, 0, 1, 1, 2, -1, -1, -1, -1], [3] * 10, [-1] * 10])
    s = soft_scores(ids, num_answers=5)
    assert s.dtype == np.float32 and s.shape == (3, 5)
    expected = np.array([[0.9, 0.6, 0.3, 0, 0], [0, 0, 0, 1.0, 0], [0, 0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(s, expected)  # min(1, 0.3 * count), exactly the float32 values
    np.testing.assert_array_equal(soft_scores(torch.from_numpy(ids), 5), expected)
    # with 10 annotators the soft score of an answer is the official accuracy of predicting it
    rng = np.random.default_rng(1)
    ids = rng.integers(-1, 4, size=(50, 10))
    s = soft_scores(ids, 4)
    for a in range(4):
        np.testing.assert_allclose(s[:, a], vqa_scores_from_ids(np.full(50, a), ids), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[-1, 5\)"):
        soft_scores(np.array([[5] * 10]), 5)
    with pytest.raises(ValueError, match=r"\[-1, 5\)"):
        soft_scores(np.array([[-2] * 10]), 5)
    with pytest.raises(ValueError, match=r"\[N, M\]"):
        soft_scores(np.array([1, 2]), 5)
