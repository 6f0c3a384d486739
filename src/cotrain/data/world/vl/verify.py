"""Verification tasks of the V&L world: ``nlvr`` (two images + a statement, true / false) and
``snli-ve`` (an image premise + a hypothesis: entailment / neutral / contradiction). Labels are
balanced (:func:`cotrain.data.world.common.balanced_labels`) and the generator writes a statement with
the row's label, drawing templates until one comes out with that truth value.

**nlvr** statements compare or count across the pair: "the left image contains exactly two red
shapes", "there are three circles in total", "each image has at least one star", "the right image has
more squares than the left image" (swapping left / right keeps the words and flips the truth),
"in one of the images, a circle is above a blue square", "exactly one image contains a cyan cross",
"the left image contains no triangles".

**snli-ve** hypotheses join one or two clauses. A *visible* clause is true or false on the scene
(existence, exact count, the colour of a unique object, a clear relation between two unique objects,
the number of objects). A *non-visual* clause gives an object a property the world does not model
(material, weight, temperature, age, history, intent: "the red circle is made of wood", "there is a
blue square that is hollow").

- entailment: every clause is visible and true;
- contradiction: some visible clause is false, or a non-visual clause is about an object that is not
  there ("there is a green star that is made of glass" with no green star: a failed presupposition);
- **neutral**: every visible clause is true and at least one non-visual clause is about an object
  that *is* there, so nothing in the image confirms or refutes the hypothesis.

Non-visual words thus occur in neutral and contradiction rows alike, and an existence clause may
carry a hedge ("there is a red circle, which might be hollow") that asserts nothing and occurs in
every class, so the words alone do not give the label (they only rule out entailment when an
unhedged property is present).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..scene import COLOUR_NAMES, Scene
from .facts import Facts, absent_desc, facts_for, pick_desc, random_desc
from .language import COLOUR_WORDS, RELATIONS, indefinite, noun_phrase, number_word, pick, rel_words, sentence, synonym
from .retrieval import holds

NLVR_CLASSES = ["false", "true"]
SNLI_VE_CLASSES = ["entailment", "neutral", "contradiction"]
PROPERTIES: tuple[str, ...] = (
    "made of wood", "made of metal", "made of glass", "made of paper", "heavy", "hollow", "warm to the touch",
    "brand new", "very old", "about to fall", "about to roll away", "painted by a child", "placed there last",
)


_a = indefinite


def count_phrase(rng, n: int, desc: dict, exact: bool = True) -> str:
    if n == 0:
        return "no " + noun_phrase(rng, desc, plural_form=True, generic="shape")
    word = number_word(rng, n, 0.2)
    return f"{'exactly ' if exact else ''}{word} {noun_phrase(rng, desc, plural_form=n > 1, generic='shape', post=False)}"


# -- nlvr ------------------------------------------------------------------------------------------
def _desc(rng, scenes: tuple[Scene, Scene]) -> dict:
    if rng.random() < 0.15:
        return absent_desc(rng, scenes[int(rng.integers(2))], 1 + int(rng.integers(2)))
    s = scenes[int(rng.integers(2))]
    obj = s.objects[int(rng.integers(len(s.objects)))]
    return random_desc(rng, obj, 0.7)


def _near(rng, c: int, want: bool) -> int:
    if want:
        return c
    return c + 1 if c == 0 or rng.random() < 0.5 else c - 1


def nlvr_statement(left: Scene, right: Scene, rng: np.random.Generator, want: bool) -> tuple[str, str]:
    """A statement about the pair whose truth is ``want``; returns (text, template kind)."""
    fs = (facts_for(left), facts_for(right))
    names = ("left", "right")
    for _ in range(100):
        kind = pick(rng, ("count", "total", "both", "more", "relation", "exactly-one", "none"))
        d = _desc(rng, (left, right))
        counts = [int(f.match(d).sum()) for f in fs]
        s = int(rng.integers(2))
        side, other = names[s], names[1 - s]
        if kind == "count":
            n = _near(rng, counts[s], want)
            t = pick(rng, ("the {s} image contains {c}", "there are {c} in the {s} image", "in the {s} image there are {c}"))
            return t.format(s=side, c=count_phrase(rng, n, d)), kind
        if kind == "total":
            n = _near(rng, sum(counts), want)
            if n == 0:
                continue
            t = pick(rng, ("there are {c} in total", "the two images show {c} altogether", "together the images contain {c}"))
            return t.format(c=count_phrase(rng, n, d, exact=rng.random() < 0.5)), kind
        if kind == "both":
            truth = min(counts) > 0
            t = pick(rng, ("both images contain {n}", "each image has at least one {m}", "there is {n} in each image"))
            text = t.format(n=_a(noun_phrase(rng, d, post=False, generic="shape")), m=noun_phrase(rng, d, post=False, generic="shape"))
        elif kind == "more":
            truth = counts[s] > counts[1 - s]
            pl = noun_phrase(rng, d, plural_form=True, generic="shape")
            t = pick(rng, ("the {s} image has more {p} than the {o} image", "there are more {p} in the {s} image than in the {o} one"))
            text = t.format(s=side, o=other, p=pl)
        elif kind == "relation":
            f = fs[s]
            opts = [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k) if i != j and f.rel(i, r, j)]
            if not opts:
                continue
            i, rel, j = pick(rng, opts)
            da, db = random_desc(rng, f.scene.objects[i], 0.9), random_desc(rng, f.scene.objects[j], 0.9)
            if rng.random() < 0.5:
                rel = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}[rel]
            vals = [holds(sc, ("rel", da, rel, db), ff) for sc, ff in zip((left, right), fs)]
            if None in vals:
                continue
            truth = any(vals)
            t = pick(rng, ("in one of the images, {a} is {r} {b}", "one image shows {a} {r} {b}", "there is {a} {r} {b} in one image"))
            text = t.format(a=_a(noun_phrase(rng, da, post=False)), r=rel_words(rng, rel), b=_a(noun_phrase(rng, db, post=False)))
        elif kind == "exactly-one":
            truth = (counts[0] > 0) != (counts[1] > 0)
            t = pick(rng, ("exactly one image contains {n}", "only one of the images has {n}"))
            text = t.format(n=_a(noun_phrase(rng, d, post=False, generic="shape")))
        else:  # none
            truth = counts[s] == 0
            pl = noun_phrase(rng, d, plural_form=True, generic="shape")
            t = pick(rng, ("the {s} image contains no {p}", "there are no {p} in the {s} image"))
            text = t.format(s=side, p=pl)
        if truth is want:
            return text, kind
    raise RuntimeError("no nlvr statement with the wanted truth value")


# -- snli-ve ---------------------------------------------------------------------------------------
def hedge(rng, text: str) -> str:
    """``text``, 30 % of the time followed by a hedge that asserts nothing (", which might be hollow,")."""
    return text + f", which might be {pick(rng, PROPERTIES)}," if rng.random() < 0.3 else text


def relation_clause(f: Facts, rng: np.random.Generator, i: int, rel: str, j: int) -> str:
    """"the <object i> is <rel> the <object j>", each object by one of its unique descriptions."""
    a = noun_phrase(rng, pick_desc(rng, f.unique(i)), post=False)
    b = noun_phrase(rng, pick_desc(rng, f.unique(j)), post=False)
    return f"the {a} is {rel_words(rng, rel)} the {b}"


def colour_clause(f: Facts, rng: np.random.Generator, want: bool) -> str | None:
    """"the <object> is <colour>" (the object named by shape / size alone) with truth ``want``; None
    when no object is unique by shape and size."""
    objs = f.scene.objects
    cands = [i for i in range(f.k) if f.unique(i, ("shape", "size"))]
    if not cands:
        return None
    i = pick(rng, cands)
    colour = objs[i].colour if want else pick(rng, [c for c in COLOUR_NAMES if c != objs[i].colour])
    np_ = noun_phrase(rng, pick_desc(rng, f.unique(i, ("shape", "size"))))
    return f"the {np_} is {synonym(rng, COLOUR_WORDS, colour)}"


def visible_clause(f: Facts, rng: np.random.Generator, want: bool) -> str:
    """A clause about what the scene shows whose truth is ``want``."""
    objs = f.scene.objects
    for _ in range(50):
        kind = pick(rng, ("exists", "exists", "count", "colour", "relation", "nobj"))
        if kind == "exists":
            d = random_desc(rng, objs[int(rng.integers(f.k))]) if want else absent_desc(rng, f.scene)
            return hedge(rng, "there is " + _a(noun_phrase(rng, d, post=False)))
        if kind == "count":
            d = random_desc(rng, objs[int(rng.integers(f.k))], 0.7)
            n = _near(rng, int(f.match(d).sum()), want)
            c = count_phrase(rng, n, d)
            return f"there {'is' if n == 1 else 'are'} {c}"
        if kind == "colour":
            text = colour_clause(f, rng, want)
            if text is None:
                continue
            return text
        if kind == "relation":
            opts = [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k)
                    if i != j and f.rel(i, r, j) is want and f.unique(i) and f.unique(j)]
            if not opts:
                continue
            return relation_clause(f, rng, *pick(rng, opts))
        n = _near(rng, f.k, want)
        return f"the picture shows {number_word(rng, n, 0.2)} {'object' if n == 1 else 'objects'}"
    raise RuntimeError("no visible clause")


def property_claim(f: Facts, rng: np.random.Generator, present: bool,
                   props: tuple[str, ...] = PROPERTIES) -> tuple[dict, bool, str]:
    """``(desc, definite, prop)``: a property of ``props`` given to an object that is (``present``)
    or is not there: ``definite`` -> "the <desc> is <prop>" (``desc`` is unique), else "there is a
    <desc> that is <prop>"."""
    prop = pick(rng, props)
    if present:
        i = int(rng.integers(f.k))
        if f.unique(i) and rng.random() < 0.5:
            return pick_desc(rng, f.unique(i)), True, prop
        return random_desc(rng, f.scene.objects[i]), False, prop
    return absent_desc(rng, f.scene), False, prop


def property_words(rng: np.random.Generator, desc: dict, definite: bool, prop: str) -> str:
    """The words of a :func:`property_claim`."""
    if definite:
        return f"the {noun_phrase(rng, desc, post=False)} is {prop}"
    return f"there is {_a(noun_phrase(rng, desc, post=False))} that is {prop}"


def nonvisual_clause(f: Facts, rng: np.random.Generator, present: bool) -> str:
    """A property the world does not model, about an object that is (``present``) or is not there."""
    return property_words(rng, *property_claim(f, rng, present))


def nli_hypothesis(rng: np.random.Generator, label: int, settled: Callable[[bool], str],
                   unsettled: Callable[[bool], str], companions: bool = True) -> tuple[str, str]:
    """A hypothesis with ``label`` (0 entailment, 1 neutral, 2 contradiction) from one or two clauses
    joined by "and"; returns (text, kind). ``settled(want)`` gives a clause the premise shows to be
    ``want``; ``unsettled(present)`` one it leaves open, about an object that is there (``present``),
    or else one that fails because its object is missing (a contradiction).

    - entailment ("visible"): one or two settled true clauses;
    - neutral ("nonvisual"): an unsettled clause (+ a settled true one half the time);
    - contradiction: a clause about a missing object ("missing-referent", a quarter) or a settled
      false clause ("false-visible"), sometimes with a true or an unsettled clause.

    ``companions=False``: the deciding clause alone (one clause, no "and")."""
    if label == 0:
        clauses, kind = [settled(True)], "visible"
        if companions and rng.random() < 0.4:
            clauses.append(settled(True))
    elif label == 1:
        clauses, kind = [unsettled(True)], "nonvisual"
        if companions and rng.random() < 0.5:
            clauses.append(settled(True))
    elif rng.random() < 0.25:
        clauses, kind = [unsettled(False)], "missing-referent"
        if companions and rng.random() < 0.3:
            clauses.append(settled(True))
    else:
        clauses, kind = [settled(False)], "false-visible"
        r = rng.random() if companions else 1.0
        if r < 0.3:
            clauses.append(settled(True))
        elif r < 0.6:
            clauses.append(unsettled(True))
    order = rng.permutation(len(clauses))
    text = " and ".join(clauses[k].rstrip(",") for k in order)
    return sentence(text), kind


def snli_hypothesis(scene: Scene, rng: np.random.Generator, label: int) -> tuple[str, str]:
    """A hypothesis with ``label`` (0 entailment, 1 neutral, 2 contradiction) about an image premise;
    returns (text, kind). Settled clauses are visible ones, unsettled ones give non-visual properties."""
    f = facts_for(scene)
    return nli_hypothesis(rng, label, lambda want: visible_clause(f, rng, want),
                          lambda present: nonvisual_clause(f, rng, present))


__all__ = ["NLVR_CLASSES", "SNLI_VE_CLASSES", "PROPERTIES", "nlvr_statement", "snli_hypothesis", "nli_hypothesis",
           "visible_clause", "colour_clause", "nonvisual_clause", "relation_clause", "property_claim", "property_words",
           "count_phrase", "hedge"]
