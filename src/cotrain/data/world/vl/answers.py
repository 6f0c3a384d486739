"""Answers of the QA tasks: the vocabularies, VQA-style normalisation and the annotator noise model.

``vqa`` and ``vgqa`` share :data:`VQA_ANSWERS` (and one head); ``gqa`` has :data:`GQA_ANSWERS`.
``vqa`` rows get ten annotator answers (:func:`annotate`): 0-4 wrong (P = .35 .30 .20 .10 .05) -- a
near miss (count +-1, a confusable colour or shape, the opposite yes / no) or, 30 % of the time, an
answer outside the vocabulary ("turquoise", "a few") -- and the rest right, 30 % of those typed as a
surface variant that normalises back ("Two", "yes!", "a circle"). The right answer thus always has
at least six votes, and ``min(1, 0.3 * count)`` gives the wrong ones partial scores.
"""

from __future__ import annotations

import re

import numpy as np

from ..scene import COLOUR_NAMES, SHAPES
from .language import NUMBER_WORDS, number_word, pick

VQA_ANSWERS: list[str] = (
    ["yes", "no"] + [str(k) for k in range(7)] + list(COLOUR_NAMES) + list(SHAPES)
    + ["small", "large", "left", "right", "top", "bottom"]
)
GQA_ANSWERS: list[str] = (
    ["yes", "no"] + list(COLOUR_NAMES) + list(SHAPES) + ["left", "right", "above", "below", "small", "large"]
)
N_ANNOTATORS = 10

_NUMBERS = {w: str(k) for k, w in enumerate(NUMBER_WORDS)} | {"none": "0"}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(answer: str) -> str:
    """The official VQA answer processing, reduced to what the world's answers need: lower case,
    punctuation removed, number words to digits, articles dropped."""
    tokens = re.sub(r"[^\w\s]", " ", answer.lower()).split()
    return " ".join(_NUMBERS.get(t, t) for t in tokens if t not in _ARTICLES)


CONFUSABLE: dict[str, tuple[str, ...]] = {
    "red": ("purple", "yellow"), "green": ("cyan", "yellow"), "blue": ("purple", "cyan"),
    "yellow": ("green", "red"), "purple": ("blue", "red"), "cyan": ("blue", "green"),
    "circle": ("star", "diamond"), "square": ("diamond", "cross"), "triangle": ("diamond", "star"),
    "diamond": ("square", "triangle"), "cross": ("star", "square"), "star": ("cross", "circle"),
    "yes": ("no",), "no": ("yes",), "small": ("large",), "large": ("small",),
    "left": ("right", "top"), "right": ("left", "bottom"), "top": ("bottom", "left"), "bottom": ("top", "right"),
}
OUT_OF_VOCAB: dict[str, tuple[str, ...]] = {
    "colour": ("orange", "pink", "dark blue", "light green", "violet", "turquoise"),
    "shape": ("round", "oval", "rectangle", "plus", "pentagon"),
    "count": ("many", "a few", "several", "lots"),
    "yesno": ("maybe", "not sure", "yeah", "nope"),
    "other": ("medium", "middle", "center"),
}


def _answer_type(answer: str) -> str:
    if answer in COLOUR_NAMES:
        return "colour"
    if answer in SHAPES:
        return "shape"
    if answer.isdigit():
        return "count"
    return "yesno" if answer in ("yes", "no") else "other"


def surface_variant(rng: np.random.Generator, answer: str) -> str:
    """How an annotator might type ``answer`` (normalises back to it)."""
    r = rng.random()
    if answer.isdigit() and r < 0.5:
        return number_word(rng, int(answer), p_digit=0.0)
    if r < 0.35:
        return answer.capitalize()
    if r < 0.6:
        return answer + pick(rng, (".", "!", " "))
    if r < 0.8 and _answer_type(answer) == "shape":
        return "a " + answer
    return answer.upper()


def wrong_answer(rng: np.random.Generator, answer: str) -> str:
    kind = _answer_type(answer)
    if rng.random() < 0.3:
        return pick(rng, OUT_OF_VOCAB[kind])
    if kind == "count":
        n = int(answer)
        return str(n + 1 if n == 0 or (n < 6 and rng.random() < 0.5) else n - 1)
    return pick(rng, CONFUSABLE[answer])


def annotate(rng: np.random.Generator, answer: str) -> list[str]:
    """Ten annotator answers for ``answer``: 0-4 wrong (P = .35 .30 .20 .10 .05), the rest right (30 % of
    those as a surface variant)."""
    n_wrong = int(rng.choice(5, p=[0.35, 0.30, 0.20, 0.10, 0.05]))
    raw = [wrong_answer(rng, answer) for _ in range(n_wrong)]
    raw += [surface_variant(rng, answer) if rng.random() < 0.3 else answer for _ in range(N_ANNOTATORS - n_wrong)]
    return [raw[k] for k in rng.permutation(N_ANNOTATORS)]


def answer_arrays(raw: list[list[str]], vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``answers`` int64 ``[N, 10]`` (normalised ids, -1 outside ``vocab``) and soft scores float32
    ``[N, A]`` = ``min(1, 0.3 * count)``."""
    index = {a: k for k, a in enumerate(vocab)}
    answers = np.asarray([[index.get(normalize_answer(a), -1) for a in row] for row in raw], dtype=np.int64)
    answers = answers.reshape(len(raw), N_ANNOTATORS)
    counts = np.zeros((len(raw), len(vocab)), dtype=np.float32)
    rows, cols = np.nonzero(answers >= 0)
    np.add.at(counts, (rows, answers[rows, cols]), 1.0)
    return answers, np.minimum(1.0, 0.3 * counts).astype(np.float32)
