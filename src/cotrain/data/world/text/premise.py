"""Premises of the text-only world tasks: a scene described in words.

A premise names every object of the scene with its size, colour and shape (identical objects
together: "two small red circles"), says how many objects there are, and may add

- *relations* between objects that have a unique description ("the red circle is left of the
  square", or the same fact inverted: "the square is right of the red circle"), each clearly true on
  the scene (beyond the margin of :mod:`..vl.facts`), at most one per pair and axis;
- *properties* the world does not model, each given to another uniquely described object ("the blue
  square is made of glass"), from the exclusive groups :data:`PROPERTY_GROUPS` (material, age: two
  properties of one group conflict);
- a *distractor* sentence that says nothing a hypothesis asks about ("the background is plain").

How many relations and properties a premise states is drawn from :data:`RELATION_P` /
:data:`PROPERTY_P`: at most one of each, as a small model trained for a few hundred steps learnt
nothing from the premise when two of each (and three objects) were allowed (see ``text-nli`` in
README.md).

Synonyms, the order of the objects and of the sentences vary, so one scene has many premises. The
:class:`Premise` keeps what it states (relations, properties) next to its text, for the hypotheses
of :mod:`.nli`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import Scene
from ..vl.facts import Facts, facts_for, pick_desc
from ..vl.language import INVERSE, RELATIONS, indefinite, noun_phrase, number_word, pick, sentence, with_fillers
from ..vl.verify import PROPERTIES, property_words, relation_clause

MATERIALS: tuple[str, ...] = ("made of wood", "made of metal", "made of glass", "made of paper")
AGES: tuple[str, ...] = ("brand new", "very old")
# A premise may state one property of a group per object; two properties of one group conflict.
PROPERTY_GROUPS: tuple[tuple[str, ...], ...] = (MATERIALS, AGES)
TEXT_PROPERTIES: tuple[str, ...] = MATERIALS + AGES  # the properties premises and hypotheses use
assert all(p in PROPERTIES for p in TEXT_PROPERTIES)

AXIS: dict[str, int] = {"left_of": 0, "right_of": 0, "above": 1, "below": 1}
COLLECTIVE: tuple[str, ...] = ("objects", "shapes", "things", "items")
DISTRACTORS: tuple[str, ...] = (
    "the background is plain", "nothing else is in the picture", "the shapes do not touch",
    "no two objects overlap", "everything lies flat",
)
RELATION_COUNTS = (0, 1)  # relations a premise states, with their odds
RELATION_P = (0.3, 0.7)
PROPERTY_COUNTS = (0, 1)  # properties a premise states (each of another object), with their odds
PROPERTY_P = (0.3, 0.7)
P_DISTRACTOR = 0.3
P_FILLER = 0.2  # the listing opens with "in this picture, " or the like
P_LIST_LAST = 0.2  # the object list ends the premise instead of opening it


def group_of(prop: str) -> tuple[str, ...] | None:
    return next((g for g in PROPERTY_GROUPS if prop in g), None)


@dataclass(frozen=True)
class Premise:
    """A premise's text and what it states: ``relations`` ``(i, rel, j)`` (each true on the scene)
    and ``properties`` ``(i, prop)`` (object indices of the scene)."""

    text: str
    relations: tuple[tuple[int, str, int], ...]
    properties: tuple[tuple[int, str], ...]

    def settled_relations(self) -> frozenset[tuple[int, str, int]]:
        """The relation triples the premise decides directly: for each stated pair, both objects in
        either order with both relations of the stated axis (half of them true, half false)."""
        out = set()
        for i, rel, j in self.relations:
            axis_rels = [r for r in RELATIONS if AXIS[r] == AXIS[rel]]
            out |= {(a, r, b) for a, b in ((i, j), (j, i)) for r in axis_rels}
        return frozenset(out)

    def linked(self, i: int, j: int, axis: int) -> bool:
        """The stated relations along ``axis`` (0: x, 1: y) connect objects ``i`` and ``j`` (so a
        relation between them might follow from the premise)."""
        edges = [(a, b) for a, rel, b in self.relations if AXIS[rel] == axis]
        seen, todo = {i}, [i]
        while todo:
            k = todo.pop()
            for a, b in edges:
                for x, y in ((a, b), (b, a)):
                    if x == k and y not in seen:
                        seen.add(y)
                        todo.append(y)
        return j in seen

    def open_relations(self, f: Facts) -> list[tuple[int, str, int]]:
        """Relations between uniquely described objects that the premise leaves open (their pair is
        not linked along the relation's axis)."""
        return [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k)
                if i != j and f.unique(i) and f.unique(j) and not self.linked(i, j, AXIS[r])]

    def property_status(self, f: Facts, desc: dict, prop: str) -> bool | None:
        """Whether "there is a <desc> that is <prop>" follows from the premise (True), is refuted by it
        (False: no object matches ``desc``, or each one that does has a conflicting stated property),
        or is left open (None)."""
        members = np.flatnonzero(f.match(desc)).tolist()
        if not members:
            return False
        stated = {i: [p for k, p in self.properties if k == i] for i in members}
        if any(prop in ps for ps in stated.values()):
            return True
        group = group_of(prop)
        if group is not None and all(any(p in group for p in ps) for ps in stated.values()):
            return False
        return None


def object_list(rng: np.random.Generator, scene: Scene) -> str:
    """Every object by size, colour and shape, identical ones together, in a random order:
    "a small red circle, two large blue boxes and a big violet star"."""
    groups: dict[tuple[str, str, str], int] = {}
    for o in scene.objects:
        key = (o.size, o.colour, o.shape)
        groups[key] = groups.get(key, 0) + 1
    keys = list(groups)
    parts = []
    for k in rng.permutation(len(keys)).tolist():
        (size, colour, shape), n = keys[k], groups[keys[k]]
        phrase = noun_phrase(rng, {"size": size, "colour": colour, "shape": shape}, plural_form=n > 1, post=False)
        parts.append(indefinite(phrase) if n == 1 else f"{number_word(rng, n, 0.2)} {phrase}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def listing(rng: np.random.Generator, scene: Scene) -> str:
    """The object list with the number of objects, in one of four templates."""
    n = len(scene.objects)
    count = f"{number_word(rng, n, 0.2)} {pick(rng, COLLECTIVE)[:-1] if n == 1 else pick(rng, COLLECTIVE)}"
    items = object_list(rng, scene)
    form = int(rng.integers(4))
    if form == 0:
        return f"there {'is' if n == 1 else 'are'} {count}: {items}"
    if form == 1:
        return f"the picture shows {count}: {items}"
    if form == 2:
        return f"{items} {'is' if n == 1 else 'are'} in the picture, {count} in all"
    return f"you can see {count}, namely {items}"


def stated_relations(rng: np.random.Generator, f: Facts) -> list[tuple[int, str, int]]:
    """Clear relations (as many as drawn from :data:`RELATION_P`, while there are any) between
    uniquely described objects, at most one per pair and axis."""
    want = int(rng.choice(RELATION_COUNTS, p=RELATION_P))
    out: list[tuple[int, str, int]] = []
    for _ in range(want):
        used = {(min(i, j), max(i, j), AXIS[r]) for i, r, j in out}
        opts = [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k)
                if i != j and f.rel(i, r, j) and f.unique(i) and f.unique(j)
                and (min(i, j), max(i, j), AXIS[r]) not in used]
        if not opts:
            break
        out.append(pick(rng, opts))
    return out


def describe_scene(scene: Scene, rng: np.random.Generator) -> Premise:
    """A premise describing ``scene`` (every object, the object count, maybe relations, a property
    and a distractor), its words drawn from ``rng``."""
    f = facts_for(scene)
    first = with_fillers(rng, listing(rng, scene), p_prefix=P_FILLER, p_suffix=0.0)
    relations = stated_relations(rng, f)
    extra = []
    for i, rel, j in relations:  # the fact as stated, or the same fact with the objects swapped
        swap = rng.random() >= 0.5
        extra.append(relation_clause(f, rng, j, INVERSE[rel], i) if swap else relation_clause(f, rng, i, rel, j))
    properties: list[tuple[int, str]] = []
    unique = [i for i in range(f.k) if f.unique(i)]
    for i in rng.permutation(unique)[: int(rng.choice(PROPERTY_COUNTS, p=PROPERTY_P))].tolist():
        prop = pick(rng, TEXT_PROPERTIES)
        properties.append((i, prop))
        extra.append(property_words(rng, pick_desc(rng, f.unique(i)), True, prop))
    if rng.random() < P_DISTRACTOR:
        extra.append(pick(rng, DISTRACTORS))
    extra = [extra[k] for k in rng.permutation(len(extra)).tolist()]
    parts = extra + [first] if rng.random() < P_LIST_LAST else [first] + extra
    text = " ".join(sentence(p) for p in parts)
    return Premise(text, tuple(relations), tuple(properties))


__all__ = ["Premise", "PROPERTY_GROUPS", "TEXT_PROPERTIES", "describe_scene", "object_list", "group_of"]
