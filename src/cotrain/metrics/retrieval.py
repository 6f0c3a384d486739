"""Caption-image retrieval: recall@K in both directions (COCO / Flickr30k convention).

``scores`` ``[Nc, Ni]``: similarity of every caption (row) with every image of the pool (column);
``caption_image`` ``[Nc]``: the column of each caption's own image. Several captions may share an
image (5 per image in COCO / Flickr30k); an image without a caption stays in the pool of the
caption->image direction but is not a query of the image->caption direction.

- caption->image (``c2i``): the rank of the caption's image among all ``Ni`` images.
- image->caption (``i2c``): for each image, the best rank among ITS captions in the list of all
  ``Nc`` captions (the VSE++ / SCAN convention: a hit at K when any of its captions is in the
  top K).

Ranks are 0-based (0 = first); recall@K is the fraction of queries with rank < K, reported as a
fraction in [0, 1] (papers print percent).

Ties: ``ties="pessimistic"`` (default) puts the correct item after every WRONG item with an equal
score, so rank = #wrong items scoring > s + #wrong items scoring == s, where s is the correct
item's score (for image->caption, the best of its captions' scores). A constant score matrix then
ranks every correct item after all the wrong ones (recall@K = 0 while K <= the number of wrong
items) instead of the 1.0 an optimistic rule gives; a model that outputs ties cannot look good.
``ties="optimistic"`` counts only the strictly higher wrong items. Uniformly random tie-breaking
lies between the two (about K/N for a constant matrix).
"""

from __future__ import annotations

import re

import numpy as np

from cotrain.metrics.classification import _np

TIE_RULES = ("pessimistic", "optimistic")
_CHUNK_ELEMENTS = 1 << 22  # a block of rows / columns at a time: temporaries stay ~32 MB
_RECALL_KEY = re.compile(r"^(c2i|i2c)_r\d+$")


def _inputs(scores, caption_image, ties: str) -> tuple[np.ndarray, np.ndarray]:
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {', '.join(TIE_RULES)}")
    s, ci = _np(scores).astype(np.float64), _np(caption_image)
    if s.ndim != 2:
        raise ValueError(f"scores must be [num_captions, num_images], got shape {s.shape}")
    if ci.ndim != 1 or len(ci) != s.shape[0]:
        raise ValueError(f"caption_image must be [num_captions] = [{s.shape[0]}], got shape {ci.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"retrieval needs at least one caption and one image, got scores {s.shape}")
    if ci.dtype.kind not in "iu":
        raise ValueError(f"caption_image must hold integer column indices, got dtype {ci.dtype}")
    ci = ci.astype(np.int64)
    if ci.min() < 0 or ci.max() >= s.shape[1]:
        raise ValueError(f"caption_image must index the {s.shape[1]} image columns; got range [{ci.min()}, {ci.max()}]")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    return s, ci


def retrieval_ranks(scores, caption_image, ties: str = "pessimistic") -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks of the correct items: ``(c2i [Nc], i2c [Ni])`` int64.

    ``i2c`` is -1 for an image that no caption refers to. See the module docstring for the tie rule.
    """
    s, ci = _inputs(scores, caption_image, ties)
    nc, ni = s.shape
    pessimistic = ties == "pessimistic"

    c2i = np.empty(nc, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // ni)
    for lo in range(0, nc, step):
        block, target = s[lo:lo + step], ci[lo:lo + step]
        true = block[np.arange(len(block)), target][:, None]
        rank = (block > true).sum(axis=1)
        if pessimistic:  # the only correct column is the target itself, which equals its own score
            rank += (block == true).sum(axis=1) - 1
        c2i[lo:lo + step] = rank

    best = np.full(ni, -np.inf)
    np.maximum.at(best, ci, s[np.arange(nc), ci])  # each image's best own-caption score
    has_caption = np.zeros(ni, dtype=bool)
    has_caption[ci] = True
    i2c = np.full(ni, -1, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // nc)
    for lo in range(0, ni, step):
        cols = np.arange(lo, min(lo + step, ni))
        block, m = s[:, cols], best[cols][None, :]
        wrong = ci[:, None] != cols[None, :]
        above = block > m  # no own caption can beat the best own caption
        if pessimistic:
            above |= (block == m) & wrong
        i2c[cols] = np.where(has_caption[cols], above.sum(axis=0), -1)
    return c2i, i2c


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return tuple(int(k) for k in ks)


def recall_from_ranks(c2i, i2c, ks=(1, 5, 10)) -> dict[str, float]:
    """Recall@K of 0-based ranks (:func:`retrieval_ranks`): ``c2i [Nc]``, ``i2c [Ni]`` (-1: an image
    without captions, left out). Keys ``"c2i_r{K}"`` then ``"i2c_r{K}"``."""
    ks = _check_ks(ks)
    c2i, i2c = np.asarray(c2i), np.asarray(i2c)
    i2c = i2c[i2c >= 0]
    out = {}
    for direction, ranks in (("c2i", c2i), ("i2c", i2c)):
        for k in ks:
            out[f"{direction}_r{k}"] = float((ranks < k).mean())
    return out


def recall_at_k(scores, caption_image, ks=(1, 5, 10), ties: str = "pessimistic") -> dict[str, float]:
    """Recall@K both directions: keys ``"c2i_r{K}"`` and ``"i2c_r{K}"`` for each K, values in [0, 1].

    ``scores`` ``[Nc, Ni]`` (any monotone similarity), ``caption_image`` ``[Nc]`` int column indices.
    """
    ks = _check_ks(ks)
    return recall_from_ranks(*retrieval_ranks(scores, caption_image, ties), ks)


def chance_recall(caption_image, num_images: int, ks=(1, 5, 10)) -> dict[str, float]:
    """Recall@K of a uniformly random ranking, same keys as :func:`recall_at_k`.

    caption->image: ``min(K, Ni) / Ni``. image->caption: an image with ``c`` of the ``Nc`` captions
    is hit unless all K drawn captions are others', ``1 - C(Nc - c, K) / C(Nc, K)``, averaged over
    the images that have captions (R@1: ``mean(c) / Nc``, i.e. ``1 / Ni`` when every image has one).
    """
    ks = _check_ks(ks)
    ci = np.asarray(caption_image, dtype=np.int64)
    if num_images < 1 or ci.size == 0 or ci.min() < 0 or ci.max() >= num_images:
        raise ValueError(f"caption_image [{ci.size}] must index {num_images} images (and there must be some)")
    nc = ci.size
    per_image = np.bincount(ci, minlength=num_images)
    per_image = per_image[per_image > 0].astype(np.float64)
    out = {f"c2i_r{k}": min(k, num_images) / num_images for k in ks}
    for k in ks:
        miss = np.ones_like(per_image)  # P(none of the image's captions among K drawn without replacement)
        for m in range(min(k, nc)):
            miss *= np.clip((nc - per_image - m) / (nc - m), 0.0, None)
        out[f"i2c_r{k}"] = float(np.mean(1.0 - miss))
    return out


def mean_recall(d: dict[str, float]) -> float:
    """Mean of the recall entries (``c2i_r*`` / ``i2c_r*``) of a :func:`recall_at_k` result.

    Over the default ks this is the "R-sum / 6" summary; other keys of ``d`` are ignored.
    """
    values = [v for k, v in d.items() if _RECALL_KEY.match(k)]
    if not values:
        raise ValueError(f"no recall entries (c2i_rK / i2c_rK) among the keys {sorted(d)}")
    return float(np.mean(values))
