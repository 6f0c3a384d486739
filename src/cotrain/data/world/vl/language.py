"""Templated language of the V&L world: words with synonyms, noun phrases, relations, fillers.

Every generator builds its text from these pieces, drawing synonyms, word orders and distractor
clauses from the example's generator, so the same meaning has many surface forms and the same bag of
words can carry different meanings ("the circle left of the red square" / "the red square left of the
circle"; "the circle that the red square is left of").

Descriptions (dicts of ``shape`` / ``colour`` / ``size``) and the scene logic live in
:mod:`.facts`; this module only turns them into words.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np


SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "ball"),
    "square": ("square", "block", "box"),
    "triangle": ("triangle", "wedge"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "cross": ("cross", "plus sign"),
    "star": ("star", "starburst"),
}
PLURAL: dict[str, str] = {
    "box": "boxes", "cross": "crosses", "rhombus": "rhombuses", "plus sign": "plus signs",
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet"),
    "cyan": ("cyan", "turquoise", "aqua"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
GENERIC_NOUNS: tuple[str, ...] = ("object", "thing", "shape", "item")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")

RELATIONS: tuple[str, ...] = ("left_of", "right_of", "above", "below")
INVERSE: dict[str, str] = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
REL_WORDS: dict[str, tuple[str, ...]] = {
    "left_of": ("left of", "to the left of", "on the left of"),
    "right_of": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath", "lower than"),
}
# absolute positions: (axis, sign): "left" = small x
SIDES: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
}
EXTREME_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("leftmost", "left"), "right": ("rightmost", "right"),
    "top": ("topmost", "top", "upper"), "bottom": ("bottommost", "bottom", "lower"),
}
SPATIAL_WORDS: frozenset[str] = frozenset(
    "left right above below top bottom over under beneath higher lower leftmost rightmost topmost "
    "bottommost upper middle side corner near next beside behind".split()
)
FILLER_PREFIX: tuple[str, ...] = ("in this picture, ", "looking at the image, ", "in the scene, ", "if you look closely, ")
FILLER_SUFFIX: tuple[str, ...] = (" in the picture", " in this image", " that you can see", " here")


def pick(rng: np.random.Generator, options):
    """One element of a sequence, uniformly."""
    return options[int(rng.integers(len(options)))]


def plural(word: str) -> str:
    return PLURAL.get(word, word + "s")


def indefinite(phrase: str) -> str:
    """``phrase`` with "a" / "an" in front."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


_WORDING: ContextVar[dict | None] = ContextVar("cotrain_world_wording", default=None)
_AVOID: ContextVar[dict | None] = ContextVar("cotrain_world_avoid", default=None)


def synonym(rng: np.random.Generator, table: dict[str, tuple[str, ...]], key: str) -> str:
    """A word for meaning ``key`` of ``table`` (e.g. ``SHAPE_WORDS``, ``"circle"``): drawn uniformly,
    or inside :func:`one_word_per_meaning` the word drawn the first time this meaning was named
    (drawn among the synonyms other than the avoided one, when the block avoids one)."""
    fixed = _WORDING.get()
    if fixed is None:
        return pick(rng, table[key])
    options = table[key]
    if options not in fixed:
        avoid = (_AVOID.get() or {}).get(options)
        fixed[options] = pick(rng, [w for w in options if w != avoid] or options)
    return fixed[options]


@contextmanager
def one_word_per_meaning(avoid: dict | None = None):
    """Within the block every meaning keeps the first synonym drawn for it (one text that calls a
    circle "disc" calls it "disc" throughout), so words match across the sentences of one example.
    Yields the wording (synonym tuple -> the word drawn) as it fills up; given as ``avoid`` to a
    later block, that block names each meaning with another synonym (a paraphrase in other words)."""
    wording: dict = {}
    tokens = _WORDING.set(wording), _AVOID.set(dict(avoid) if avoid else None)
    try:
        yield wording
    finally:
        _WORDING.reset(tokens[0])
        _AVOID.reset(tokens[1])


def noun_phrase(
    rng: np.random.Generator, desc: dict, *, plural_form: bool = False, post: bool = True, generic: str | None = None
) -> str:
    """Words for ``desc`` (no article): synonyms drawn per word; the colour sometimes after the noun
    ("circle that is red", "circle in red") when ``post`` and singular."""
    if "shape" in desc:
        noun = synonym(rng, SHAPE_WORDS, desc["shape"])
    else:
        noun = generic or pick(rng, GENERIC_NOUNS)
    if plural_form:
        noun = plural(noun)
    size = synonym(rng, SIZE_WORDS, desc["size"]) if "size" in desc else None
    colour = synonym(rng, COLOUR_WORDS, desc["colour"]) if "colour" in desc else None
    if colour and post and not plural_form and rng.random() < 0.3:
        tail = pick(rng, ("that is", "in"))
        return " ".join(w for w in (size, noun, tail, colour) if w)
    return " ".join(w for w in (size, colour, noun) if w)


def rel_words(rng: np.random.Generator, rel: str) -> str:
    return synonym(rng, REL_WORDS, rel)


def with_fillers(rng: np.random.Generator, text: str, p_prefix: float = 0.2, p_suffix: float = 0.2) -> str:
    if rng.random() < p_prefix:
        text = pick(rng, FILLER_PREFIX) + text
    if rng.random() < p_suffix:
        text = text + pick(rng, FILLER_SUFFIX)
    return text


def sentence(text: str, end: str = ".") -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + end


def number_word(rng: np.random.Generator, n: int, p_digit: float = 0.3) -> str:
    return str(n) if (rng.random() < p_digit or n >= len(NUMBER_WORDS)) else NUMBER_WORDS[n]


def words(text: str) -> list[str]:
    """Lower-case word tokens (what a bag-of-words sees)."""
    return re.findall(r"[a-z0-9]+", text.lower())
