"""``text-para``: do two descriptions of a scene state the same facts? (MRPC / QQP-like, text only.)

Each row is two short descriptions of one scene, joined as ``"<a> [SEP] <b>"`` and labelled
paraphrase or not_paraphrase. The scenes have two objects of different shapes (so a shape names an
object). A row draws what it describes (:class:`Stated`) in one of three *families*
(:data:`FAMILIES`):

- ``object``: one object, by its shape and maybe its colour and size ("there is a small red disc");
- ``property``: one object given a property of :data:`.premise.TEXT_PROPERTIES` ("the red disc is
  made of glass");
- ``relation``: a clear relation between the two objects ("the red disc is left of the box").

Description ``a`` states that, true of the scene. Description ``b``:

- **paraphrase**: states the same in other words: every meaning ``a`` named gets another synonym
  (``a``'s "red disc" is ``b``'s "crimson ball": :func:`..vl.language.one_word_per_meaning` with
  ``avoid``), maybe another template, the relation maybe with its objects swapped ("the box is right
  of the red disc", :data:`P_INVERT`);
- **not_paraphrase**: states it in other words with one fact changed (:data:`CHANGES`): a colour, a
  size, a shape or the property changed to another value, the property given to the other object,
  or the relation reversed ("the red disc is right of the box", or with its objects swapped "the box
  is left of the red disc": the same words as a paraphrase that swaps them).

Colour, size and shape words never repeat across the two descriptions, so whether they match is a
matter of synonyms, which a bag of words - even one told which words the two sides share - does
not see. Either description may open with a filler ("in this picture, ") or carry a distractor
sentence that states nothing ("the background is plain").

Kept simple for a small model (README.md): one clause per description, few fillers and
distractors. Descriptions of a whole scene (the listing, a relation and a property at once, with
swapped attributes as negatives), with or without shared synonyms, left a dim-128, depth-2 model at
chance after 1000 steps; even as it is, that model's loss stays near ln 2 for about 1100 steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..scene import COLOUR_NAMES, SHAPES, Scene
from ..vl.facts import Facts, facts_for
from ..vl.language import (
    INVERSE,
    RELATIONS,
    indefinite,
    noun_phrase,
    one_word_per_meaning,
    pick,
    rel_words,
    sentence,
    with_fillers,
)
from .nli import SEPARATOR
from .premise import DISTRACTORS, TEXT_PROPERTIES

PARA_CLASSES: list[str] = ["not_paraphrase", "paraphrase"]
FAMILIES = ("object", "property", "relation")
# the changes that make a not-paraphrase, with their odds among those that apply to the row
CHANGES: dict[str, float] = {
    "change-colour": 1.0, "change-size": 1.0, "change-shape": 1.0, "change-property": 1.0,
    "move-property": 1.0, "reverse-relation": 1.0,
}
_ATTRIBUTE_CHANGES = ("change-colour", "change-size", "change-shape")
FAMILY_CHANGES: dict[str, tuple[str, ...]] = {  # the changes each family can get
    "object": _ATTRIBUTE_CHANGES,
    "property": _ATTRIBUTE_CHANGES + ("change-property", "move-property"),
    "relation": _ATTRIBUTE_CHANGES + ("reverse-relation",),
}
KINDS = tuple(f"{family}/{kind}" for family in FAMILIES for kind in ("paraphrase", *FAMILY_CHANGES[family]))
ATTRIBUTE_P = {"object": (("colour", 0.8), ("size", 0.6)), "property": (("colour", 0.4), ("size", 0.3)),
               "relation": (("colour", 0.4), ("size", 0.3))}  # the odds that an object is named by them
P_INVERT = 0.3  # a relation is said with its objects swapped ("the box is right of the disc")
P_DISTRACTOR = 0.1  # per description
P_PREFIX = 0.1  # a description opens with a filler ("in this picture, ")
OBJECT_TEMPLATES = ("there is {x}", "the picture shows {x}", "you can see {x}", "{x} is in the picture")


@dataclass(frozen=True)
class Stated:
    """What a description states: its ``family``, the attributes it names each object by (object
    index -> description, always with the shape), the relation ``(i, rel, j)``, the properties
    (object index -> property)."""

    family: str
    descs: dict[int, dict]
    relation: tuple[int, str, int] | None = None
    props: dict[int, str] = field(default_factory=dict)


def _desc(rng: np.random.Generator, f: Facts, i: int, family: str) -> dict:
    o = f.scene.objects[i]
    d = {"shape": o.shape}
    for key, p in ATTRIBUTE_P[family]:
        if rng.random() < p:
            d[key] = getattr(o, key)
    return d


def draw_stated(rng: np.random.Generator, f: Facts, family: str) -> Stated:
    """What ``a`` states about the scene of ``f`` in ``family`` (true of the scene)."""
    if family == "relation":
        i, rel, j = pick(rng, [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k)
                               if i != j and f.rel(i, r, j)])
        return Stated(family, {i: _desc(rng, f, i, family), j: _desc(rng, f, j, family)}, relation=(i, rel, j))
    if family in ("object", "property"):
        i = int(rng.integers(f.k))
        props = {i: pick(rng, TEXT_PROPERTIES)} if family == "property" else {}
        return Stated(family, {i: _desc(rng, f, i, family)}, props=props)
    raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")


def applicable(s: Stated) -> list[str]:
    """The changes that alter what ``s`` states."""
    named = {key for d in s.descs.values() for key in d}
    ok = {
        "change-colour": "colour" in named, "change-size": "size" in named, "change-shape": True,
        "change-property": bool(s.props), "move-property": bool(s.props),
        "reverse-relation": s.relation is not None,
    }
    return [c for c in CHANGES if ok[c] and c in FAMILY_CHANGES[s.family]]


def change(rng: np.random.Generator, f: Facts, s: Stated, kind: str) -> Stated:
    """``s`` (about the scene of ``f``) with the one change ``kind`` made."""
    descs = {i: dict(d) for i, d in s.descs.items()}
    if kind in ("change-colour", "change-size", "change-shape"):
        key = kind.split("-")[1]
        i = pick(rng, [i for i, d in descs.items() if key in d])
        if key == "size":
            descs[i][key] = "large" if descs[i][key] == "small" else "small"
        else:  # (a shape no object of the scene has: a shape keeps naming one object)
            taken = {descs[i][key]} | ({o.shape for o in f.scene.objects} if key == "shape" else set())
            descs[i][key] = pick(rng, [v for v in (SHAPES if key == "shape" else COLOUR_NAMES) if v not in taken])
        return replace(s, descs=descs)
    if kind == "change-property":
        (i, prop), = s.props.items()
        return replace(s, props={i: pick(rng, [p for p in TEXT_PROPERTIES if p != prop])})
    if kind == "move-property":  # to the other object, named by the same kind of words
        (i, prop), = s.props.items()
        other = f.scene.objects[1 - i]
        return replace(s, descs={1 - i: {k: getattr(other, k) for k in descs[i]}}, props={1 - i: prop})
    if kind == "reverse-relation":
        i, rel, j = s.relation
        return replace(s, relation=(i, INVERSE[rel], j))
    raise ValueError(f"unknown change {kind!r}; known: {list(CHANGES)}")


def _np(rng: np.random.Generator, desc: dict) -> str:
    return noun_phrase(rng, desc, post=False)


def render(rng: np.random.Generator, scene: Scene, s: Stated) -> str:
    """One description stating ``s`` about ``scene``, worded from ``rng``."""
    if s.family == "object":
        (desc,) = s.descs.values()
        text = pick(rng, OBJECT_TEMPLATES).format(x=indefinite(_np(rng, desc)))
    elif s.family == "property":
        ((i, desc),) = s.descs.items()
        text = f"the {_np(rng, desc)} is {s.props[i]}"
    else:
        i, rel, j = s.relation
        if rng.random() < P_INVERT:  # the same fact with the objects swapped
            i, rel, j = j, INVERSE[rel], i
        text = f"the {_np(rng, s.descs[i])} is {rel_words(rng, rel)} the {_np(rng, s.descs[j])}"
    parts = [with_fillers(rng, text, p_prefix=P_PREFIX, p_suffix=0.0)]
    if rng.random() < P_DISTRACTOR:
        parts.insert(int(rng.integers(2)), pick(rng, DISTRACTORS))
    return " ".join(sentence(p) for p in parts)


def para_example(scene: Scene, rng: np.random.Generator, label: int,
                 object_counts: tuple[int, int] | None = None) -> tuple[str, str]:
    """``(text, kind)`` of one row with ``label`` (0 not_paraphrase, 1 paraphrase) about a scene of
    two objects of different shapes: ``text`` = a + " [SEP] " + b; ``kind`` = ``"<family>/<change>"``
    (``"<family>/paraphrase"`` for a paraphrase)."""
    if len(scene.objects) != 2 or scene.objects[0].shape == scene.objects[1].shape:
        raise ValueError("text-para describes scenes of two objects of different shapes")
    f = facts_for(scene)
    with one_word_per_meaning() as wording:
        stated = draw_stated(rng, f, pick(rng, FAMILIES))
        a = render(rng, scene, stated)
    if label == 1:
        kind, other = "paraphrase", stated
    else:
        options = applicable(stated)
        p = np.asarray([CHANGES[c] for c in options])
        kind = options[int(rng.choice(len(options), p=p / p.sum()))]
        other = change(rng, f, stated, kind)
    with one_word_per_meaning(avoid=wording):  # b names every meaning a named with another synonym
        b = render(rng, scene, other)
    return f"{a} {SEPARATOR} {b}", f"{stated.family}/{kind}"


__all__ = ["PARA_CLASSES", "CHANGES", "FAMILIES", "FAMILY_CHANGES", "KINDS", "Stated", "applicable", "change",
           "draw_stated", "para_example", "render"]
