"""Multi-task visual grounding consistency (12-in-1 section 5).

The paper's definition, as read here: take images that have both VQA questions ``q_j`` and
referring expressions ``r_k`` (1500 RefCOCO/+ test images with VQA annotations). For every
question-expression pair on the same image, ``d(q_j, r_k)`` counts the visual concepts they share
(nouns and adjectives, found with a part-of-speech tagger). A pair is *correct* when the question
was answered correctly AND the expression's referent was localised. The metric is the
``d``-weighted accuracy over all pairs::

    consistency = sum_pairs d * correct(q) * localised(r) / sum_pairs d

so pairs with nothing in common (``d = 0``) do not count at all. It is a joint rate: a pair whose
question is answered wrongly counts against the model even when the referent is found. The
conditional reading ("of the questions answered right, how often is the referent localised") is
reported as well, as ``localised_given_correct = sum d*c*l / sum d*c``.

Here the concepts are whatever the caller extracts: words from a tagger for real data, or the
world's object names / attributes / object ids (:func:`pair_records` counts shared items). Any
other weighting (e.g. the IoU of the question's object with the referent) can be given directly as
a pair's ``overlap``. ``correct`` may be a bool or a VQA accuracy in [0, 1] (soft credit: the pair
scores ``accuracy * localised``); ``localised`` is a bool (the refexp metric's verdict).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Mapping

PAIR_KEYS = ("image_id", "correct", "localised", "overlap")


def pair_records(questions: Iterable[Mapping], refexps: Iterable[Mapping]) -> list[dict]:
    """Every (question, expression) pair on the same image, weighted by shared concepts.

    Args:
        questions: mappings with ``image_id``, ``correct`` (bool or accuracy in [0, 1]) and
            ``concepts`` (iterable of hashables: words, object ids, ...); optional ``question_id``.
        refexps: mappings with ``image_id``, ``localised`` (bool) and ``concepts``; optional ``ref_id``.

    Returns:
        One record per pair, in question order then expression order: ``image_id``, ``correct``,
        ``localised``, ``overlap`` = ``|set(q.concepts) & set(r.concepts)|``, ``question_id`` and
        ``ref_id`` (the item's own id, or its position in the input).
    """
    by_image: dict = defaultdict(list)
    for k, r in enumerate(refexps):
        _require(r, ("image_id", "localised", "concepts"), f"refexp {k}")
        by_image[r["image_id"]].append((r.get("ref_id", k), r["localised"], set(r["concepts"])))
    out = []
    for j, q in enumerate(questions):
        _require(q, ("image_id", "correct", "concepts"), f"question {j}")
        concepts = set(q["concepts"])
        for ref_id, localised, r_concepts in by_image.get(q["image_id"], []):
            out.append({"image_id": q["image_id"], "question_id": q.get("question_id", j), "ref_id": ref_id,
                        "correct": q["correct"], "localised": localised,
                        "overlap": len(concepts & r_concepts)})
    return out


def grounding_consistency(records: Iterable[Mapping]) -> dict:
    """Overlap-weighted joint accuracy of question-expression pairs (see the module docstring).

    Args:
        records: pair mappings with ``image_id``, ``correct`` (bool or float in [0, 1]),
            ``localised`` (bool) and ``overlap`` (``d >= 0``), e.g. from :func:`pair_records`.

    Returns:
        ``consistency`` (the paper's metric, in [0, 1]; NaN when no pair has ``d > 0``),
        ``localised_given_correct`` (NaN when no weighted question is answered right),
        ``question_accuracy`` and ``localised_rate`` (the ``d``-weighted marginals), ``pairs``
        (all records), ``weighted_pairs`` (``d > 0``), ``total_weight`` (sum of ``d``), ``images``
        (distinct images with a ``d > 0`` pair).
    """
    total = joint = answered = found = 0.0
    pairs = weighted = 0
    images = set()
    for i, r in enumerate(records):
        _require(r, PAIR_KEYS, f"record {i}")
        d = _number(r["overlap"], f"record {i} overlap")
        if d < 0:
            raise ValueError(f"record {i}: overlap must be >= 0, got {r['overlap']!r}")
        c = _number(r["correct"], f"record {i} correct")
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"record {i}: correct must be a bool or an accuracy in [0, 1], got {r['correct']!r}")
        loc = r["localised"]
        if not isinstance(loc, bool) and loc not in (0, 1):
            raise ValueError(f"record {i}: localised must be a bool, got {loc!r}")
        pairs += 1
        if d == 0:
            continue
        weighted += 1
        images.add(r["image_id"])
        total += d
        answered += d * c
        found += d * float(loc)
        joint += d * c * float(loc)
    nan = float("nan")
    return {
        "consistency": joint / total if total else nan,
        "localised_given_correct": joint / answered if answered else nan,
        "question_accuracy": answered / total if total else nan,
        "localised_rate": found / total if total else nan,
        "pairs": pairs,
        "weighted_pairs": weighted,
        "total_weight": total,
        "images": len(images),
    }


def _require(item: Mapping, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in item]
    if missing:
        raise ValueError(f"{what} lacks {missing}; it has {sorted(item)}")


def _number(x, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {x!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {x!r}")
    return v
