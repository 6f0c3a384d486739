import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from cotrain.metrics.classification import (
    average_precisions,
    chance_level,
    confusion_matrix,
    mean_average_precision,
    top1,
)


def sk_map(scores, targets):
    aps = [average_precision_score(targets[:, c], scores[:, c]) for c in range(targets.shape[1]) if targets[:, c].any()]
    return float(np.mean(aps))


def test_top1_vs_sklearn():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 500)
    expected = accuracy_score(labels, logits.argmax(1))
    assert top1(logits, labels) == pytest.approx(expected)
    assert top1(torch.from_numpy(logits), torch.from_numpy(labels)) == pytest.approx(expected)
    assert top1(torch.from_numpy(logits).bfloat16(), torch.from_numpy(labels)) == pytest.approx(expected, abs=0.02)
    assert top1(logits.argmax(1), labels) == pytest.approx(expected)  # ids instead of scores
    assert top1(np.array([1, 2, 3]), np.array([1, 2, 0])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        top1(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="length"):
        top1(np.zeros((4, 3)), np.zeros(5, dtype=int))


def test_top1_multilabel():
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    targets = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=np.float32)
    assert top1(scores, targets) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_vs_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = 400, 25
    targets = (rng.random((n, c)) < rng.uniform(0.01, 0.3, c)).astype(np.float32)
    targets[:, 3] = 0  # a class without positives is left out of the mean
    scores = rng.normal(size=(n, c)) + 1.5 * targets
    scores[:, :5] = np.round(scores[:, :5], 1)  # many ties
    scores[:, 5] = 0.25  # all tied
    got = mean_average_precision(scores, targets)
    assert got == pytest.approx(sk_map(scores, targets), abs=1e-12)
    assert mean_average_precision(torch.from_numpy(scores).float(), torch.from_numpy(targets)) == pytest.approx(
        sk_map(scores.astype(np.float32), targets), abs=1e-6)
    per_class = average_precisions(scores, targets)
    assert np.isnan(per_class[3])
    for k in (0, 5, 10):
        assert per_class[k] == pytest.approx(average_precision_score(targets[:, k], scores[:, k]), abs=1e-12)


def test_map_simple_cases():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    assert mean_average_precision(np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3], [0.1, 0.2]]), targets) == 1.0
    # class 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2
    ap = average_precisions(np.array([0.9, 0.5, 0.4, 0.1]), np.array([1, 0, 1, 0]))
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="no class"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(np.array([[np.nan], [1.0]]), np.array([[1], [0]]))
    with pytest.raises(ValueError, match="shape|\\[N, C\\]"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 3)))


def test_chance_level_top1():
    train = np.array([0, 1, 1, 2, 1, 0])
    test = np.array([1, 1, 0, 2, 2])
    assert chance_level(train, test) == pytest.approx(2 / 5)  # always predict 1
    assert chance_level(torch.tensor(train), torch.tensor(test), kind="top1") == pytest.approx(2 / 5)
    assert chance_level(np.array([3, 0, 0, 3]), np.array([0, 3, 3])) == pytest.approx(1 / 3)  # tie -> 0
    with pytest.raises(ValueError, match="mAP"):
        chance_level(train, test, kind="auc")


def test_chance_level_map_equals_constant_scorer():
    rng = np.random.default_rng(4)
    train = (rng.random((300, 6)) < 0.2).astype(np.float32)
    test = (rng.random((200, 6)) < np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.0])).astype(np.float32)
    test[0, 0] = 1  # make sure class 0 has a positive
    prior = np.tile(train.mean(0), (len(test), 1))  # predict the training prior for every example
    expected = sk_map(prior, test)
    assert chance_level(train, test, kind="mAP") == pytest.approx(expected, abs=1e-12)
    assert chance_level(train, test, kind="mAP") == pytest.approx(test[:, :5].mean(0).mean())
    # multi-label top1 chance: the most frequent training class among each test example's positives
    major = int(train.sum(0).argmax())
    assert chance_level(train, test, kind="top1") == pytest.approx(test[:, major].mean())


def test_confusion_matrix_vs_sklearn():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 300)
    logits = rng.normal(size=(300, 6))
    preds = logits.argmax(1)
    expected = sk_confusion_matrix(labels, preds, labels=list(range(6)))
    np.testing.assert_array_equal(confusion_matrix(preds, labels, 6), expected)
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(logits), torch.from_numpy(labels), 6), expected)
    cm = confusion_matrix(np.array([0, 0, 2]), np.array([0, 1, 2]), 4)  # class 3 absent: zero row and column
    assert cm.shape == (4, 4) and cm.dtype == np.int64
    assert cm[0, 0] == 1 and cm[1, 0] == 1 and cm[2, 2] == 1 and cm.sum() == 3
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 4)


def test_map_in_class_chunks_matches_one_pass(monkeypatch):
    from cotrain.metrics import classification

    rng = np.random.default_rng(6)
    n, c = 300, 20
    targets = rng.random((n, c)) < 0.1
    scores = np.round(rng.normal(size=(n, c)) + targets, 1)
    one_pass = classification._ap_columns(scores, targets)
    monkeypatch.setattr(classification, "_CHUNK_ELEMENTS", 3 * n)  # 3 classes per pass, 7 passes
    chunked = average_precisions(scores, targets)
    np.testing.assert_allclose(chunked, one_pass, rtol=0, atol=1e-15)
    expected = [average_precision_score(targets[:, k], scores[:, k]) for k in range(c)]
    np.testing.assert_allclose(chunked, expected, rtol=0, atol=1e-12)
