"""Question answering of the V&L world: ``vqa``, ``vgqa`` (VQA v2 / VG-QA-like, one shared answer
vocabulary :data:`VQA_ANSWERS`) and ``gqa`` (GQA-like relational and compositional questions, its own
vocabulary :data:`GQA_ANSWERS`).

Each row draws a question *kind* from a balanced cycle (so e.g. yes and no are equally frequent) and
builds the question on the row's scene; when a kind cannot be asked about that scene (say, no object
is unique without its colour) the next kind of the cycle is used.

- ``vqa`` kinds: colour, shape, count (0-6, sometimes of an absent attribute), yes, no (existence or
  attribute checks); ten noisy annotator answers per question (:mod:`.answers`).
- ``vgqa`` kinds (one answer, repeated ten times): the colour / shape of the object in a relation to
  a landmark, size, where (left / right / top / bottom, the axis named in the question), how many
  objects are in a relation to a landmark.
- ``gqa`` kinds (one answer, repeated ten times): verify a relation (yes / no; the two objects can
  swap roles, so the bag of words is the same for opposite answers), choose a relation (left / right,
  above / below), query the colour / shape of a relationally specified object, compare the colour /
  shape / size of two objects (yes / no), existence of something in a relation (yes / no).

``about`` is the index of the object the question is about (-1 for counts and absent things), for
the grounding-consistency analysis.

``answer_type`` is VQA's answer type of the canonical answer (yes / no -> "yes/no", a count ->
"number", else "other"; :func:`cotrain.metrics.vqa_types.answer_type_of`), for the accuracy per
answer type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ....metrics.vqa_types import answer_type_of
from ..scene import COLOUR_NAMES, SHAPES, Scene
from .answers import GQA_ANSWERS, N_ANNOTATORS, VQA_ANSWERS, annotate
from .facts import KEYS, Facts, absent_desc, describe, facts_for, pick_desc, random_desc
from .language import (
    COLOUR_WORDS,
    RELATIONS,
    SHAPE_WORDS,
    SIZE_WORDS,
    noun_phrase,
    pick,
    rel_words,
    sentence,
    with_fillers,
)



@dataclass
class QA:
    question: str
    answer: str  # canonical, in the task's vocabulary
    about: int = -1
    raw: list[str] = field(default_factory=list)  # the annotators' answers as typed (vqa only)
    kind: str = ""  # the question kind actually asked

    @property
    def answer_type(self) -> str:
        """VQA's answer type of the (canonical) answer: "yes/no", "number" or "other"."""
        return answer_type_of([self.answer]) or "other"


def _ask(rng: np.random.Generator, templates: tuple[str, ...], **parts) -> str:
    return sentence(with_fillers(rng, pick(rng, templates).format(**parts), 0.15, 0.15), "?")


# -- vqa -------------------------------------------------------------------------------------------
def vqa_colour(f: Facts, rng, kind) -> QA | None:
    cands = [i for i in range(f.k) if f.unique(i, ("shape", "size"))]
    if not cands:
        return None
    i = pick(rng, cands)
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i, ("shape", "size"))))
    q = _ask(rng, ("what colour is the {n}", "what color is the {n}", "what is the colour of the {n}",
                   "which colour does the {n} have", "the {n} is what colour"), n=np_)
    return QA(q, f.scene.objects[i].colour, i)


def vqa_shape(f: Facts, rng, kind) -> QA | None:
    cands = [i for i in range(f.k) if f.unique(i, ("colour", "size"))]
    if not cands:
        return None
    i = pick(rng, cands)
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i, ("colour", "size"))))
    q = _ask(rng, ("what shape is the {n}", "what kind of shape is the {n}", "which shape does the {n} have",
                   "the {n} has what shape"), n=np_)
    return QA(q, f.scene.objects[i].shape, i)


def vqa_count(f: Facts, rng, kind) -> QA | None:
    form = pick(rng, (("colour",), ("shape",), ("colour", "shape"), ("size", "shape"), ()))
    if rng.random() < 0.15 and form:
        desc = {k: v for k, v in absent_desc(rng, f.scene, 2).items() if k in form}
    else:
        desc = describe(f.scene.objects[int(rng.integers(f.k))], form)
    n = int(f.match(desc).sum())
    np_ = noun_phrase(rng, desc, plural_form=True, generic=None if desc else pick(rng, ("object", "thing", "shape")))
    q = _ask(rng, ("how many {n} are there", "how many {n} can you see", "what is the number of {n}",
                   "how many {n} are in the picture"), n=np_)
    return QA(q, str(n), -1)


def vqa_yesno(f: Facts, rng, kind) -> QA | None:
    """An attribute check ("is the circle red?") when some object can be named without the
    attribute, else (and half the time) an existence question; always possible."""
    want = kind == "yes"
    objs = f.scene.objects
    attr = pick(rng, ("colour", "shape", "size"))
    rest = tuple(k for k in KEYS if k != attr)
    cands = [i for i in range(f.k) if f.unique(i, rest)]
    if rng.random() < 0.5 or not cands:  # existence
        if want:
            i = int(rng.integers(f.k))
            desc = random_desc(rng, objs[i])
        else:
            full = absent_desc(rng, f.scene)
            keys = pick(rng, [s for s in (("colour",), ("shape",), ("colour", "shape"), tuple(full))
                              if not f.match({k: full[k] for k in s if k in full}).any()] or [tuple(full)])
            desc = {k: full[k] for k in keys if k in full}
        hits = np.flatnonzero(f.match(desc))
        if rng.random() < 0.5:
            q = _ask(rng, ("is there a {n}", "do you see a {n}", "is there a {n} in the image"), n=noun_phrase(rng, desc))
        else:
            q = _ask(rng, ("are there any {n}", "can you see any {n}"), n=noun_phrase(rng, desc, plural_form=True))
        return QA(q, "yes" if want else "no", int(hits[0]) if len(hits) == 1 else -1)
    i = pick(rng, cands)
    value = getattr(objs[i], attr)
    if not want:
        value = pick(rng, [v for v in {"colour": COLOUR_NAMES, "shape": SHAPES, "size": ("small", "large")}[attr]
                           if v != value])
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i, rest)), post=False)
    if attr == "shape":
        q = _ask(rng, ("is the {n} a {v}", "is the {n} shaped like a {v}"), n=np_, v=pick(rng, SHAPE_WORDS[value]))
    else:
        words = COLOUR_WORDS if attr == "colour" else SIZE_WORDS
        q = _ask(rng, ("is the {n} {v}", "is the {n} {v} or not"), n=np_, v=pick(rng, words[value]))
    return QA(q, "yes" if want else "no", i)


# -- vgqa ------------------------------------------------------------------------------------------
def _relational(f: Facts, rng, subject_keys, **kw):
    opts = f.relational(subject_keys, **kw)
    if not opts:
        return None
    i, subj, rel, j = pick(rng, opts)
    land = noun_phrase(rng, pick_desc(rng, f.unique(j)))
    return i, subj, rel, j, land


def vgqa_colour_rel(f: Facts, rng, kind) -> QA | None:
    got = _relational(f, rng, ("shape", "size"))
    if got is None:
        return None
    i, subj, rel, j, land = got
    q = _ask(rng, ("what colour is the {s} {r} the {l}", "what is the colour of the {s} {r} the {l}"),
             s=noun_phrase(rng, subj), r=rel_words(rng, rel), l=land)
    return QA(q, f.scene.objects[i].colour, i)


def vgqa_shape_rel(f: Facts, rng, kind) -> QA | None:
    got = _relational(f, rng, ("colour", "size"))
    if got is None:
        return None
    i, subj, rel, j, land = got
    if subj:
        q = _ask(rng, ("what shape is the {s} {r} the {l}", "what kind of shape is the {s} {r} the {l}"),
                 s=noun_phrase(rng, subj, post=False), r=rel_words(rng, rel), l=land)
    else:
        q = _ask(rng, ("what is {r} the {l}", "what shape is {r} the {l}"), r=rel_words(rng, rel), l=land)
    return QA(q, f.scene.objects[i].shape, i)


def vgqa_size(f: Facts, rng, kind) -> QA | None:
    cands = [i for i in range(f.k) if f.unique(i, ("shape", "colour"))]
    if not cands:
        return None
    i = pick(rng, cands)
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i, ("shape", "colour"))))
    q = _ask(rng, ("what size is the {n}", "how big is the {n}", "is the {n} small or large"), n=np_)
    return QA(q, f.scene.objects[i].size, i)


def vgqa_where(f: Facts, rng, kind) -> QA | None:
    opts = [(i, s) for i in range(f.k) if f.unique(i) for s in f.sides(i)]
    if not opts:
        return None
    i, side = pick(rng, opts)
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i)))
    if side in ("left", "right"):
        t = ("where is the {n}, left or right", "on which side is the {n}", "where is the {n}: right or left")
    else:
        t = ("where is the {n}, top or bottom", "is the {n} at the top or the bottom", "where is the {n}: bottom or top")
    return QA(_ask(rng, t, n=np_), side, i)


def vgqa_count_rel(f: Facts, rng, kind) -> QA | None:
    cands = [(j, r) for j in range(f.k) if f.unique(j) for r in range(4) if (f.T[r, :, j] != -1).sum() == f.k - 1]
    if not cands:
        return None
    j, r = pick(rng, cands)
    n = int((f.T[r, :, j] == 1).sum())
    q = _ask(rng, ("how many objects are {r} the {l}", "how many things are {r} the {l}"),
             r=rel_words(rng, RELATIONS[r]), l=noun_phrase(rng, pick_desc(rng, f.unique(j))))
    return QA(q, str(n), -1)


# -- gqa -------------------------------------------------------------------------------------------
def _pair(f: Facts, rng, keys=KEYS, need=None):
    """Two objects with unique descriptions over ``keys`` (and ``need(i, j)`` true)."""
    ok = [i for i in range(f.k) if f.unique(i, keys)]
    pairs = [(i, j) for i in ok for j in ok if i != j and (need is None or need(i, j))]
    return pick(rng, pairs) if pairs else None


def gqa_verify(f: Facts, rng, kind) -> QA | None:
    want = kind.endswith("yes")
    opts = [(i, j, r) for i in range(f.k) for j in range(f.k) for r in RELATIONS
            if i != j and f.rel(i, r, j) is want and f.unique(i) and f.unique(j)]
    if not opts:
        return None
    i, j, rel = pick(rng, opts)
    a = noun_phrase(rng, pick_desc(rng, f.unique(i)))
    b = noun_phrase(rng, pick_desc(rng, f.unique(j)))
    q = _ask(rng, ("is the {a} {r} the {b}", "is it true that the {a} is {r} the {b}", "is the {a} located {r} the {b}"),
             a=a, r=rel_words(rng, rel), b=b)
    return QA(q, "yes" if want else "no", i)


def gqa_choose(f: Facts, rng, kind) -> QA | None:
    got = _pair(f, rng, need=lambda i, j: f.rel(i, "left_of", j) is not None or f.rel(i, "above", j) is not None)
    if got is None:
        return None
    i, j = got
    axes = [ax for ax in (("left_of", "left", "right"), ("above", "above", "below")) if f.rel(i, ax[0], j) is not None]
    rel, yes, no = pick(rng, axes)
    answer = yes if f.rel(i, rel, j) else no
    first, second = (yes, no) if rng.random() < 0.5 else (no, yes)
    if rel == "left_of":
        t = "is the {a} to the {x} or to the {y} of the {b}"
    else:
        t = "is the {a} {x} or {y} the {b}"
    q = _ask(rng, (t,), a=noun_phrase(rng, pick_desc(rng, f.unique(i))), b=noun_phrase(rng, pick_desc(rng, f.unique(j))),
             x=first, y=second)
    return QA(q, answer, i)


def gqa_colour_rel(f: Facts, rng, kind) -> QA | None:
    got = _relational(f, rng, ("shape", "size"), allow_empty=False)
    if got is None:
        return None
    i, subj, rel, j, land = got
    q = _ask(rng, ("what colour is the {s} that is {r} the {l}", "which colour is the {s} {r} the {l}",
                   "the {s} {r} the {l} has what colour"), s=noun_phrase(rng, subj), r=rel_words(rng, rel), l=land)
    return QA(q, f.scene.objects[i].colour, i)


def gqa_shape_rel(f: Facts, rng, kind) -> QA | None:
    got = _relational(f, rng, ("colour", "size"), allow_empty=False)
    if got is None:
        return None
    i, subj, rel, j, land = got
    q = _ask(rng, ("what shape is the {s} that is {r} the {l}", "which shape is the {s} {r} the {l}"),
             s=noun_phrase(rng, subj, post=False, generic=pick(rng, ("object", "thing", "item"))), r=rel_words(rng, rel), l=land)
    return QA(q, f.scene.objects[i].shape, i)


def gqa_compare(f: Facts, rng, kind) -> QA | None:
    want = kind.endswith("yes")
    attrs = list(KEYS)
    rng.shuffle(attrs)
    for attr in attrs:
        rest = tuple(k for k in KEYS if k != attr)
        got = _pair(f, rng, rest, need=lambda i, j: (getattr(f.scene.objects[i], attr) == getattr(f.scene.objects[j], attr)) is want)
        if got is None:
            continue
        i, j = got
        a = noun_phrase(rng, pick_desc(rng, f.unique(i, rest)), post=False)
        b = noun_phrase(rng, pick_desc(rng, f.unique(j, rest)), post=False)
        word = {"colour": "colour", "shape": "shape", "size": "size"}[attr]
        q = _ask(rng, ("are the {a} and the {b} the same {w}", "do the {a} and the {b} have the same {w}",
                       "is the {a} the same {w} as the {b}"), a=a, b=b, w=word)
        return QA(q, "yes" if want else "no", i)
    return None


def gqa_exist(f: Facts, rng, kind) -> QA | None:
    want = kind.endswith("yes")
    opts = []
    for j in range(f.k):
        if not f.unique(j):
            continue
        for r, rel in enumerate(RELATIONS):
            for i in range(f.k):
                if i == j:
                    continue
                d = random_desc(rng, f.scene.objects[i])
                mem = f.match(d) & (np.arange(f.k) != j)
                t = f.T[r][mem, j]
                if (t == -1).any():
                    continue
                if want and (t == 1).any():
                    opts.append((d, rel, j, int(np.flatnonzero(mem & (f.T[r][:, j] == 1))[0]) if (t == 1).sum() == 1 else -1))
                if not want and not (t == 1).any():
                    opts.append((d, rel, j, -1))
            if not want:  # something absent is never in any relation
                opts.append((absent_desc(rng, f.scene, 2), rel, j, -1))
    if not opts:
        return None
    d, rel, j, about = pick(rng, opts)
    land = noun_phrase(rng, pick_desc(rng, f.unique(j)))
    if rng.random() < 0.5:
        q = _ask(rng, ("is there a {n} {r} the {l}", "is there any {n} {r} the {l}"), n=noun_phrase(rng, d, post=False),
                 r=rel_words(rng, rel), l=land)
    else:
        q = _ask(rng, ("are there any {n} {r} the {l}",), n=noun_phrase(rng, d, plural_form=True), r=rel_words(rng, rel), l=land)
    return QA(q, "yes" if want else "no", about)


Maker = Callable[[Facts, np.random.Generator, str], "QA | None"]
KINDS: dict[str, list[tuple[str, Maker]]] = {
    "vqa": [("colour", vqa_colour), ("shape", vqa_shape), ("count", vqa_count), ("yes", vqa_yesno), ("no", vqa_yesno)],
    "vgqa": [("colour", vgqa_colour_rel), ("shape", vgqa_shape_rel), ("size", vgqa_size), ("where", vgqa_where),
             ("count", vgqa_count_rel)],
    "gqa": [("verify-yes", gqa_verify), ("verify-no", gqa_verify), ("choose", gqa_choose), ("colour", gqa_colour_rel),
            ("shape", gqa_shape_rel), ("compare-yes", gqa_compare), ("compare-no", gqa_compare),
            ("exist-yes", gqa_exist), ("exist-no", gqa_exist)],
}
VOCAB: dict[str, list[str]] = {"vqa": VQA_ANSWERS, "vgqa": VQA_ANSWERS, "gqa": GQA_ANSWERS}


def make_question(task: str, scene: Scene, rng: np.random.Generator, kind: int) -> QA:
    """A question of ``task`` about ``scene``: kind number ``kind`` of :data:`KINDS`, or the next
    feasible one."""
    f = facts_for(scene)
    kinds = KINDS[task]
    for step in range(len(kinds)):
        name, maker = kinds[(kind + step) % len(kinds)]
        qa = maker(f, rng, name)
        if qa is not None:
            qa.kind = name
            qa.raw = annotate(rng, qa.answer) if task == "vqa" else [qa.answer] * N_ANNOTATORS
            return qa
    raise RuntimeError(f"no {task} question fits scene {scene.index}")
