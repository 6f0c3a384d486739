"""Classification metrics: top-1 accuracy, AudioSet-style mAP, chance level, confusion matrix.

Every function accepts torch tensors (any device or dtype) or NumPy arrays and returns Python
floats or NumPy arrays.

Label forms: single-label ``[N]`` integer class ids; multi-label ``[N, C]`` targets, a class
counting as positive when its target is ``>= 0.5`` (hard 0/1 targets as AudioSet has).
"""

from __future__ import annotations

import numpy as np

CHANCE_KINDS = ("top1", "mAP")
_CHUNK_ELEMENTS = 1 << 22  # AP is computed a block of classes at a time: temporaries stay ~32 MB


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:  # bfloat16 / float16
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _positive(targets: np.ndarray) -> np.ndarray:
    return targets >= 0.5 if targets.dtype.kind == "f" else targets.astype(bool)


def top1(logits_or_preds, labels) -> float:
    """Fraction of examples whose top-scoring class is right.

    ``logits_or_preds``: scores ``[N, C]`` or predicted ids ``[N]``. ``labels``: ids ``[N]``, or
    multi-hot ``[N, C]`` -- then a hit is a top-scoring class that is one of the positives.
    """
    x, y = _np(logits_or_preds), _np(labels)
    if len(y) == 0:
        raise ValueError("top1 of an empty set is undefined")
    if len(x) != len(y):
        raise ValueError(f"predictions and labels differ in length: {len(x)} vs {len(y)}")
    if y.ndim == 2:
        if x.shape != y.shape:
            raise ValueError(f"multi-label top1 needs scores shaped like the targets {y.shape}, got {x.shape}")
        pred = x.argmax(axis=-1)
        return float(_positive(y)[np.arange(len(y)), pred].mean())
    if y.ndim != 1 or x.ndim not in (1, 2):
        raise ValueError(f"expected scores [N, C] or ids [N] with labels [N]; got {x.shape} and {y.shape}")
    pred = x.argmax(axis=-1) if x.ndim == 2 else x
    return float((pred == y).mean())


def average_precisions(scores, targets) -> np.ndarray:
    """Average precision of each class ``[C]`` (NaN for classes without a positive).

    AP = sum over positives of the precision at the threshold equal to that positive's score,
    divided by the number of positives; examples with equal scores form one threshold (as
    ``sklearn.metrics.average_precision_score`` computes it, no interpolation).
    """
    s, t = _np(scores).astype(np.float64), _np(targets)
    if s.ndim == 1:
        s, t = s[:, None], t.reshape(-1, 1)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores and targets must both be [N, C]; got {s.shape} and {t.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    n, c = s.shape
    if n == 0:
        return np.full(c, np.nan)
    pos = _positive(t)
    chunk = max(1, _CHUNK_ELEMENTS // n)  # classes per pass
    return np.concatenate([_ap_columns(s[:, i:i + chunk], pos[:, i:i + chunk]) for i in range(0, c, chunk)])


def _ap_columns(s: np.ndarray, pos: np.ndarray) -> np.ndarray:
    n = len(s)
    order = np.argsort(-s, axis=0, kind="stable")  # descending score, per class
    s_sorted = np.take_along_axis(s, order, axis=0)
    p_sorted = np.take_along_axis(pos, order, axis=0)
    precision = np.cumsum(p_sorted, axis=0) / np.arange(1, n + 1)[:, None]
    # each row takes the precision at the last row of its group of tied scores
    last_of_group = np.ones_like(s_sorted, dtype=bool)
    last_of_group[:-1] = s_sorted[:-1] != s_sorted[1:]
    group_end = np.where(last_of_group, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(group_end[::-1], axis=0)[::-1]
    precision_at = np.take_along_axis(precision, group_end, axis=0)
    n_pos = pos.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision_at * p_sorted).sum(axis=0) / n_pos
    ap[n_pos == 0] = np.nan
    return ap


def mean_average_precision(scores, targets) -> float:
    """mAP as AudioSet reports it: per-class AP averaged over the classes with at least one positive.

    ``scores``: ``[N, C]`` (logits or probabilities: only the order matters); ``targets``: multi-hot ``[N, C]``.
    """
    ap = average_precisions(scores, targets)
    if np.all(np.isnan(ap)):
        raise ValueError("mAP is undefined: no class has a positive example")
    return float(np.nanmean(ap))


def chance_level(labels_train, labels_test, kind: str = "top1") -> float:
    """The score of a predictor that ignores the input and uses only the training labels.

    ``top1``: accuracy on the test labels of always predicting the most frequent training class
    (ties: the smallest class id); for multi-hot labels, the fraction of test examples having that
    class among their positives. ``mAP``: a constant score per class (e.g. the training prior)
    ties every test example, so each class's AP is its test positive rate; the result is their
    mean over the classes with a positive (train labels do not change it).
    """
    if kind not in CHANCE_KINDS:
        raise ValueError(f"unknown chance kind {kind!r}; choose one of {', '.join(CHANCE_KINDS)}")
    tr, te = _np(labels_train), _np(labels_test)
    if len(te) == 0:
        raise ValueError("chance level on an empty test set is undefined")
    if kind == "mAP":
        if te.ndim != 2:
            raise ValueError(f"mAP chance level needs multi-hot test labels [N, C], got shape {te.shape}")
        rate = _positive(te).mean(axis=0)
        has_pos = rate > 0
        if not has_pos.any():
            raise ValueError("mAP is undefined: no class has a positive test example")
        return float(rate[has_pos].mean())
    if len(tr) == 0:
        raise ValueError("chance level needs training labels")
    if tr.ndim == 2:
        majority = int(_positive(tr).sum(axis=0).argmax())
        if te.ndim != 2:
            return float((te == majority).mean())
        return float(_positive(te)[:, majority].mean())
    if tr.ndim != 1 or te.ndim != 1:
        raise ValueError(f"top1 chance level needs label ids [N]; got shapes {tr.shape} and {te.shape}")
    majority = int(np.bincount(tr.astype(np.int64)).argmax())
    return float((te == majority).mean())


def confusion_matrix(preds, labels, num_classes: int) -> np.ndarray:
    """Counts ``[num_classes, num_classes]`` (int64): row = true class, column = predicted class.

    ``preds``: predicted ids ``[N]`` or scores ``[N, C]`` (argmax taken).
    """
    p, y = _np(preds), _np(labels)
    if p.ndim == 2:
        p = p.argmax(axis=-1)
    if p.ndim != 1 or y.ndim != 1 or len(p) != len(y):
        raise ValueError(f"need predictions and labels of shape [N]; got {p.shape} and {y.shape}")
    p, y = p.astype(np.int64), y.astype(np.int64)
    for what, v in (("predictions", p), ("labels", y)):
        if len(v) and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{what} must be class ids in [0, {num_classes}); got range [{v.min()}, {v.max()}]")
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
