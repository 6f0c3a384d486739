"""Hypothesis clauses about a scene that a text premise settles (true / false) or leaves open.

:class:`PremiseClauses` gives :func:`..vl.verify.nli_hypothesis` its two clause makers. A *settled*
clause belongs to one of three families, drawn with the same odds whatever the wanted truth, so the
words of a clause do not tell its truth:

- **property** (:data:`P_PROPERTY`): a property the premise states, given to the same object (true);
  another property of its group ("made of metal" after "made of wood") or, :data:`P_MISSING` of the
  time, a property of an object that is not there (false);
- **relation** (:data:`P_RELATION`): a relation between a pair the premise relates along the same
  axis, in either order (true or false: "the star is left of the circle" after "the circle is left
  of the star");
- **fact** (the rest): existence, an exact count (the number drawn before the description, so a
  number or "no" does not tell the truth), the colour of an object named by shape / size, the number
  of objects when the task's scenes differ in it (a false count stays in their range).

When a family has nothing to say about the scene and premise, a fact is used instead. An *open*
clause is a relation between objects the premise does not link along that axis, or a property of
:data:`.premise.TEXT_PROPERTIES` that no stated property decides. The "missing referent" share of
the contradictions of :func:`..vl.verify.nli_hypothesis` gets a false settled clause too, so the
contradictions mix the families as the entailments do. :data:`KINDS` names the clauses made.
"""

from __future__ import annotations

import numpy as np

from ..scene import COLOUR_NAMES, SHAPES, SIZES
from ..vl.facts import KEYS, Facts, _subsets, describe, pick_desc, random_desc
from ..vl.language import indefinite, noun_phrase, number_word, pick
from ..vl.verify import colour_clause, count_phrase, hedge, property_claim, property_words, relation_clause
from .premise import COLLECTIVE, TEXT_PROPERTIES, Premise, group_of

P_PROPERTY = 0.4
P_RELATION = 0.4
P_MISSING = 0.5  # a false property clause is about a missing object (else: a conflicting property)
KINDS = ("property", "relation", "exists", "count", "colour", "nobj", "missing-referent", "open-relation",
         "open-property")
P_OPEN_RELATION = 0.5  # an open clause is a relation (when one is open), else a property
COUNTS = (0, 1, 2, 3)  # the number an exact-count clause states
COUNT_P = (0.2, 0.4, 0.3, 0.1)
P_NEAR_MISS = 0.7  # a false count is off by one when it can be
_VALUES = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES}
_KEY_P = (("shape", 0.8), ("colour", 0.6), ("size", 0.3))  # as facts.random_desc draws keys


def absent_like(f: Facts, rng: np.random.Generator) -> dict:
    """A description no object matches, its keys drawn as :func:`..vl.facts.random_desc` draws them
    (so a false existence clause looks like a true one)."""
    for _ in range(200):
        keys = [k for k, p in _KEY_P if rng.random() < p]
        if not keys:
            continue
        d = {k: pick(rng, _VALUES[k]) for k in ("size", "colour", "shape") if k in keys}
        if f.mask(d) == 0:
            return d
    raise RuntimeError("no absent description found")


def countable(f: Facts) -> list[tuple[dict, int]]:
    """Every description of some object over shape and / or colour (maybe with size), with the
    number of objects matching it."""
    subsets = [s for s in _subsets(KEYS, False) if s != ("size",)]
    out, seen = [], set()
    for o in f.scene.objects:
        for keys in subsets:
            d = describe(o, keys)
            key = tuple(sorted(d.items()))
            if key not in seen:
                seen.add(key)
                out.append((d, int(f.match(d).sum())))
    return out


class PremiseClauses:
    """The clause makers of one row: ``settled(want)`` and ``unsettled(present)`` for
    :func:`..vl.verify.nli_hypothesis`. ``object_counts`` is the task's range of objects per scene."""

    def __init__(self, f: Facts, premise: Premise, rng: np.random.Generator, object_counts: tuple[int, int]) -> None:
        self.f, self.premise, self.rng, self.object_counts = f, premise, rng, object_counts
        self.kinds: list[str] = []  # the kind of each clause made, in order (see KINDS)
        self.settled_relations = sorted(premise.settled_relations())
        self.open_relations = premise.open_relations(f)
        # the number of objects is only worth stating when scenes differ in it
        self.fact_kinds = ("exists", "count", "colour") + (("nobj",) if object_counts[0] < object_counts[1] else ())

    # -- settled -----------------------------------------------------------------------------------
    def settled(self, want: bool) -> str:
        """A clause the premise shows to be ``want``."""
        r = self.rng.random()
        text = None
        if r < P_PROPERTY:
            text = self.property(want)
        elif r < P_PROPERTY + P_RELATION:
            text = self.relation(want)
        return text if text is not None else self.fact(want)

    def property(self, want: bool) -> str | None:
        """The stated property (true); another of its group, or any property of a missing object
        (false); None when the premise states no property."""
        rng, f = self.rng, self.f
        if not self.premise.properties:
            return None
        i, prop = pick(rng, self.premise.properties)
        if want:
            self.kinds.append("property")
            if rng.random() < 0.5:
                return property_words(rng, pick_desc(rng, f.unique(i)), True, prop)
            return property_words(rng, random_desc(rng, f.scene.objects[i]), False, prop)
        if rng.random() < P_MISSING:
            self.kinds.append("missing-referent")
            return property_words(rng, absent_like(f, rng), False, pick(rng, TEXT_PROPERTIES))
        self.kinds.append("property")
        other = pick(rng, [p for p in group_of(prop) if p != prop])
        return property_words(rng, pick_desc(rng, f.unique(i)), rng.random() < 0.5, other)

    def relation(self, want: bool) -> str | None:
        opts = [t for t in self.settled_relations if self.f.rel(*t) is want]
        if not opts:
            return None
        self.kinds.append("relation")
        return relation_clause(self.f, self.rng, *pick(self.rng, opts))

    def fact(self, want: bool) -> str:
        rng, f = self.rng, self.f
        for _ in range(50):
            kind = pick(rng, self.fact_kinds)
            if kind != "colour":
                self.kinds.append(kind)
            if kind == "exists":
                d = random_desc(rng, f.scene.objects[int(rng.integers(f.k))]) if want else absent_like(f, rng)
                return hedge(rng, "there is " + indefinite(noun_phrase(rng, d, post=False)))
            if kind == "count":
                return self.count(want)
            if kind == "colour":
                text = colour_clause(f, rng, want)
                if text is not None:
                    self.kinds.append(kind)
                    return text
                continue
            lo, hi = self.object_counts
            n = f.k if want else pick(rng, [m for m in range(lo, hi + 1) if m != f.k])
            return f"the picture shows {number_word(rng, n, 0.2)} {pick(rng, COLLECTIVE)}"
        raise RuntimeError("no settled clause")

    def count(self, want: bool) -> str:
        """"there are exactly two red circles" / "there are no stars": the number is drawn first."""
        rng, f = self.rng, self.f
        descs = countable(f)
        for _ in range(50):
            n = int(rng.choice(COUNTS, p=COUNT_P))
            true = [d for d, c in descs if c == n]
            if n > 0 and not true:
                continue  # (for either truth, so the number says nothing about it)
            if want:
                d = pick(rng, true) if n > 0 else absent_like(f, rng)
            else:
                wrong = [(d, c) for d, c in descs if c != n] + ([] if n == 0 else [(None, 0)])
                near = [x for x in wrong if abs(x[1] - n) == 1]
                d, _ = pick(rng, near if near and rng.random() < P_NEAR_MISS else wrong)
                d = d if d is not None else absent_like(f, rng)
            return f"there {'is' if n == 1 else 'are'} {count_phrase(rng, n, d)}"
        raise RuntimeError("no count clause")

    # -- open / missing ----------------------------------------------------------------------------
    def unsettled(self, present: bool) -> str:
        """A clause the premise leaves open about objects that are there (``present``); else (the
        "missing referent" share of the contradictions) a false clause drawn like any other, so the
        contradictions mix the clause kinds as the entailments do."""
        rng, f = self.rng, self.f
        if not present:
            return self.settled(False)
        if self.open_relations and rng.random() < P_OPEN_RELATION:
            self.kinds.append("open-relation")
            return relation_clause(f, rng, *pick(rng, self.open_relations))
        for _ in range(100):
            desc, definite, prop = property_claim(f, rng, True, TEXT_PROPERTIES)
            if self.premise.property_status(f, desc, prop) is None:
                self.kinds.append("open-property")
                return property_words(rng, desc, definite, prop)
        raise RuntimeError("no open property clause")


__all__ = ["PremiseClauses", "absent_like", "countable", "P_PROPERTY", "P_RELATION"]
