"""``text-qnli``: does a sentence about a scene answer a question about it? (QNLI-like, text only.)

Each row is a question and one sentence of a scene description, joined as
``"<question> [SEP] <sentence>"``, labelled entailment (the sentence answers the question) or
not_entailment. The scenes have two objects of different shapes, so "the disc" names one object.

**Questions** (:data:`QUESTIONS`) ask about one object, named by its shape (sometimes with another
attribute that is not asked): its colour, its size, where it is horizontally / vertically (asked only
when the two objects are clearly apart along both axes), what it is made of, how old it is.

**Sentences** (:class:`Statement`) are true of the scene and come in three kinds:

- ``objects``: one or both objects, each by its shape and maybe its colour and / or size ("there is
  a red disc and a box");
- ``relation``: a clear relation between the two ("the red disc is left of the big box");
- ``property``: one or both objects given a property of :data:`.premise.TEXT_PROPERTIES` ("the disc
  is made of glass and the red box is very old").

A sentence answers a colour / size question when it names the asked object *with* that attribute, a
horizontal / vertical one when it relates the two objects along that axis, a material / age one when
it gives the asked object a property of that group. The sentence's kind is drawn with the same odds
whatever the label: for a where / material / age question always the one kind that can answer it
(a relation, a property sentence: every negative is a near miss), for a colour / size question an
objects sentence :data:`P_OBJECTS` of the time, else a relation or a property sentence (which may
name objects with their colour and size too). Then its content is drawn until it answers
(entailment) or not. So the words are shared across labels: "the red disc is left of the box"
answers "what colour is the disc?" but not "what colour is the box?", "the disc is made of glass and
the box is very old" answers "what is the disc made of?" but not "what is the box made of?".

Within one row question and sentence name a meaning with the same synonym
(:func:`..vl.language.one_word_per_meaning`), as ``text-nli`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..scene import Scene
from ..vl.facts import Facts, facts_for
from ..vl.language import (
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
from .premise import AGES, MATERIALS, TEXT_PROPERTIES

QNLI_CLASSES: list[str] = ["entailment", "not_entailment"]

QUESTIONS: dict[str, tuple[str, ...]] = {
    "colour": ("what colour is the {a}", "which colour does the {a} have", "what is the colour of the {a}"),
    "size": ("what size is the {a}", "what is the size of the {a}"),
    "horizontal": ("where is the {a} horizontally", "how is the {a} placed horizontally"),
    "vertical": ("where is the {a} vertically", "how is the {a} placed vertically"),
    "material": ("what is the {a} made of", "what material is the {a}"),
    "age": ("how old is the {a}", "what age is the {a}"),
}
AXIS_OF = {"horizontal": 0, "vertical": 1}
GROUP_OF = {"material": MATERIALS, "age": AGES}
ASKED_KEY = {"colour": "colour", "size": "size"}  # the attribute a question asks for (the others ask none)
SENTENCE_KINDS = ("objects", "relation", "property")
# the one sentence kind that can answer a where / material / age question
RELATED = {"horizontal": "relation", "vertical": "relation", "material": "property", "age": "property"}
P_OBJECTS = 0.5  # a colour / size question's sentence is an objects sentence (else relation / property)
P_ATTRIBUTE = 0.5  # a sentence names an object with its colour / its size (each)
P_BOTH = 0.6  # an objects / property sentence names both objects
P_QUESTION_EXTRA = 0.25  # the question names its object with one more (not asked) attribute
OBJECT_TEMPLATES = ("there is {x}", "the picture shows {x}", "you can see {x}", "{x} {be} in the picture")
KINDS = tuple(f"{q}/{s}" for q in ASKED_KEY for s in SENTENCE_KINDS) + tuple(f"{q}/{s}" for q, s in RELATED.items())


@dataclass
class Statement:
    """A sentence and what it states: the attributes it names each object by (``named``: object
    index -> description, always with the shape), the axis it relates the objects along (0 x, 1 y,
    None), the property it gives each object (``props``)."""

    text: str
    named: dict[int, dict] = field(default_factory=dict)
    axis: int | None = None
    props: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    kind: str  # a key of QUESTIONS
    target: int  # the object asked about

    def answered_by(self, s: Statement) -> bool:
        if self.kind in ASKED_KEY:
            return ASKED_KEY[self.kind] in s.named.get(self.target, {})
        if self.kind in AXIS_OF:
            return s.axis == AXIS_OF[self.kind]
        return s.props.get(self.target) in GROUP_OF[self.kind]


def _desc(rng: np.random.Generator, f: Facts, i: int) -> dict:
    """Object ``i`` by its shape, with its colour / size each :data:`P_ATTRIBUTE` of the time."""
    o = f.scene.objects[i]
    d = {"shape": o.shape}
    if rng.random() < P_ATTRIBUTE:
        d["colour"] = o.colour
    if rng.random() < P_ATTRIBUTE:
        d["size"] = o.size
    return d


def _order(rng: np.random.Generator, k: int) -> list[int]:
    """Both objects in a random order, or (1 - :data:`P_BOTH`) one of them."""
    order = rng.permutation(k).tolist()
    return order if rng.random() < P_BOTH else order[:1]


def objects_statement(rng: np.random.Generator, f: Facts) -> Statement:
    """"there is a red disc and a big box"."""
    named = {i: _desc(rng, f, i) for i in _order(rng, f.k)}
    items = " and ".join(indefinite(noun_phrase(rng, d, post=False)) for d in named.values())
    text = pick(rng, OBJECT_TEMPLATES).format(x=items, be="are" if len(named) > 1 else "is")
    return Statement(text, named)


def clear_relations(f: Facts) -> list[tuple[int, str, int]]:
    """Every ``(i, rel, j)`` that clearly holds (any order of the pair, any axis)."""
    return [(i, r, j) for r in RELATIONS for i in range(f.k) for j in range(f.k) if i != j and f.rel(i, r, j)]


def relation_statement(rng: np.random.Generator, f: Facts) -> Statement:
    """"the red disc is left of the big box" (a clear relation, either object first)."""
    i, rel, j = pick(rng, clear_relations(f))
    di, dj = _desc(rng, f, i), _desc(rng, f, j)
    text = f"the {noun_phrase(rng, di, post=False)} is {rel_words(rng, rel)} the {noun_phrase(rng, dj, post=False)}"
    return Statement(text, {i: di, j: dj}, axis=0 if rel in ("left_of", "right_of") else 1)


def property_statement(rng: np.random.Generator, f: Facts) -> Statement:
    """"the disc is made of glass and the red box is very old" (one or both objects)."""
    named, props, parts = {}, {}, []
    for i in _order(rng, f.k):
        named[i], props[i] = _desc(rng, f, i), pick(rng, TEXT_PROPERTIES)
        parts.append(f"the {noun_phrase(rng, named[i], post=False)} is {props[i]}")
    return Statement(" and ".join(parts), named, props=props)


STATEMENTS = {"objects": objects_statement, "relation": relation_statement, "property": property_statement}


def question_kinds(f: Facts) -> tuple[str, ...]:
    """The question kinds a scene allows: where-questions only when the two objects are clearly
    apart along both axes (so a sentence along the other axis exists for a negative)."""
    apart = f.rel(0, "left_of", 1) is not None and f.rel(0, "above", 1) is not None
    return tuple(q for q in QUESTIONS if apart or q not in AXIS_OF)


def ask(rng: np.random.Generator, f: Facts, q: Question) -> str:
    """The question's words: "what colour is the disc?", sometimes "... the big disc?"."""
    o = f.scene.objects[q.target]
    d = {"shape": o.shape}
    if rng.random() < P_QUESTION_EXTRA:
        key = pick(rng, [k for k in ("colour", "size") if k != ASKED_KEY.get(q.kind)])
        d[key] = getattr(o, key)
    return sentence(pick(rng, QUESTIONS[q.kind]).format(a=noun_phrase(rng, d, post=False)), "?")


def sentence_kind(rng: np.random.Generator, question: str) -> str:
    """The kind of sentence a row with a ``question`` kind gets (not depending on the label)."""
    if question in RELATED:
        return RELATED[question]
    return "objects" if rng.random() < P_OBJECTS else pick(rng, ("relation", "property"))


def qnli_example(scene: Scene, rng: np.random.Generator, label: int,
                 object_counts: tuple[int, int] | None = None) -> tuple[str, str]:
    """``(text, kind)`` of one row with ``label`` (0 entailment, 1 not_entailment) about a scene of
    two objects of different shapes: ``text`` = question + " [SEP] " + sentence; ``kind`` =
    ``"<question kind>/<sentence kind>"``."""
    f = facts_for(scene)
    want = label == 0
    with one_word_per_meaning():
        q = Question(pick(rng, question_kinds(f)), int(rng.integers(f.k)))
        question = ask(rng, f, q)
        kind = sentence_kind(rng, q.kind)
        for _ in range(500):
            s = STATEMENTS[kind](rng, f)
            if q.answered_by(s) is want:
                text = with_fillers(rng, s.text, p_prefix=0.2, p_suffix=0.0)
                return f"{question} {SEPARATOR} {sentence(text)}", f"{q.kind}/{kind}"
    raise RuntimeError(f"no {kind} sentence that {'answers' if want else 'misses'} a {q.kind} question")


__all__ = ["QNLI_CLASSES", "QUESTIONS", "KINDS", "Question", "Statement", "qnli_example", "question_kinds"]
