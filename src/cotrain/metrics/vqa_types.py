"""VQA answer types and the accuracy per answer type that the official VQA evaluation reports.

VQA v2 annotations give each question an ``answer_type``: ``"yes/no"``, ``"number"`` or ``"other"``.
The official evaluation (``vqaEval.py`` of GT-Vision-Lab/VQA, ``accuracy["perAnswerType"]``) averages
the per-question accuracies over the questions of each type; cotrain reports the same averages as
fractions in [0, 1] (the official file prints them x 100, rounded to 2 decimals).

Data without the field (GQA, Visual Genome QA, the world's QA tasks) get it from
:func:`answer_type_of`, the VQA dataset's definition applied to the answers: the most frequent
normalised answer (VQA v2's ``multiple_choice_answer``; with one answer, that answer) is ``yes`` or
``no`` -> ``"yes/no"``, a number (digits, optionally a decimal part: ``"2"``, ``"two"`` -> ``"2"``,
``"2.5"``) -> ``"number"``, anything else -> ``"other"``. A question without answers has no type
(None).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from cotrain.metrics.vqa import normalize_answer

ANSWER_TYPES = ("yes/no", "number", "other")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def answer_type_of(answers: Sequence[str]) -> str | None:
    """The answer type of a question from its annotator answers (``[M]`` raw strings; see the
    module docstring), None when no answer is left after normalisation."""
    if isinstance(answers, str):
        raise ValueError(f"answers must be a sequence of answer strings, not one string ({answers!r})")
    counts = Counter(a for a in map(normalize_answer, answers) if a)
    if not counts:
        return None
    top = counts.most_common(1)[0][0]  # ties: the answer seen first
    if top in ("yes", "no"):
        return "yes/no"
    return "number" if _NUMBER.fullmatch(top) else "other"


def accuracy_per_answer_type(scores, types) -> dict[str, float]:
    """Mean of the per-question ``scores`` ``[N]`` over the questions of each type in ``types`` ``[N]``
    (strings; ``""`` = unknown, left out). Keys: the types present, ``yes/no``, ``number``, ``other``
    first, then any other type alphabetically."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(types).astype(str)
    if s.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"scores [N] and answer types [N] must have one entry per question, got {s.shape} and {t.shape}")
    present = set(t.tolist()) - {""}
    order = [k for k in ANSWER_TYPES if k in present] + sorted(present - set(ANSWER_TYPES))
    return {k: float(s[t == k].mean()) for k in order}
