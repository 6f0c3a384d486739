"""An independent reader of ``text-qnli`` rows (test helper).

It reads the question and the sentence from the text alone (templates by regular expressions,
synonyms mapped back to attributes through :mod:`nli_reader`'s word table), checks that the sentence
is true of the scene re-created from the row's ``image_id`` (every object it names exists with the
attributes it is named by; a relation clearly holds), and works out the label by its own rules:

- "what colour / size is the X": answered when the sentence names X with a colour / size word;
- "where is the X horizontally / vertically": answered when the sentence relates two objects with
  left / right (horizontally) or above / below words (vertically);
- "what is the X made of" / "how old is the X": answered when the sentence gives X a material / an
  age (nli_reader.GROUPS).

Answered: entailment (0); else not_entailment (1).
"""

from __future__ import annotations

import re

from nli_reader import FILLERS, GROUPS, PROP_RE, REL_RE, RELATION, Scene, matching, parse_np, strip_article

QUESTION_PATTERNS = [
    ("colour", r"what colour is the (.+)"), ("colour", r"which colour does the (.+) have"),
    ("colour", r"what is the colour of the (.+)"),
    ("size", r"what size is the (.+)"), ("size", r"what is the size of the (.+)"),
    ("x", r"where is the (.+) horizontally"), ("x", r"how is the (.+) placed horizontally"),
    ("y", r"where is the (.+) vertically"), ("y", r"how is the (.+) placed vertically"),
    ("material", r"what is the (.+) made of"), ("material", r"what material is the (.+)"),
    ("age", r"how old is the (.+)"), ("age", r"what age is the (.+)"),
]
OBJECT_PATTERNS = [r"there is (.+)", r"the picture shows (.+)", r"you can see (.+)", r"(.+) (?:is|are) in the picture"]


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def read_question(text: str) -> tuple[str, dict]:
    q = lower_first(text.strip())
    assert q.endswith("?"), text
    q = q[:-1]
    hits = [(kind, m[1]) for kind, pattern in QUESTION_PATTERNS if (m := re.fullmatch(pattern, q))]
    assert len(hits) == 1, f"unread question {text!r}: {hits}"
    kind, phrase = hits[0]
    return kind, parse_np(phrase)


def read_sentence(text: str) -> dict:
    """``{"named": [(desc), ...], "axis": "x" | "y" | None, "props": [(desc, prop), ...]}``."""
    s = lower_first(text.strip())
    assert s.endswith("."), text
    s = s[:-1]
    for filler in FILLERS:
        s = s[len(filler):] if s.startswith(filler) else s
    m = re.fullmatch(rf"the (.+?) is ({PROP_RE})(?: and the (.+) is ({PROP_RE}))?", s)
    if m:
        props = [(parse_np(m[1]), m[2])] + ([(parse_np(m[3]), m[4])] if m[3] else [])
        return {"named": [d for d, _ in props], "axis": None, "props": props, "relation": None}
    m = re.fullmatch(rf"the (.+) is ({REL_RE}) the (.+)", s)
    if m:
        a, b = parse_np(m[1]), parse_np(m[3])
        return {"named": [a, b], "axis": RELATION[m[2]][0], "props": [], "relation": (a, m[2], b)}
    for pattern in OBJECT_PATTERNS:
        m = re.fullmatch(pattern, s)
        if m:
            named = [parse_np(strip_article(item)) for item in m[1].split(" and ")]
            return {"named": named, "axis": None, "props": [], "relation": None}
    raise AssertionError(f"unread sentence {text!r}")


def read_qnli_label(text: str, scene) -> int:
    """The label (0 entailment, 1 not_entailment) of a row's text about ``scene``; also checks the
    sentence against the scene."""
    question, sent = text.split(" [SEP] ")
    seen = Scene(scene)
    assert len(seen.objects) == 2 and seen.objects[0]["shape"] != seen.objects[1]["shape"]
    kind, qdesc = read_question(question)
    target = matching(seen.objects, qdesc)
    assert len(target) == 1, (question, qdesc)
    s = read_sentence(sent)
    objects = []
    for desc in s["named"]:
        assert "shape" in desc, f"an object named without its shape in {sent!r}"
        hit = matching(seen.objects, desc)
        assert len(hit) == 1, f"{desc} is not one object of the scene ({sent!r})"
        objects.append(hit[0])
    if s["relation"] is not None:
        a, rel, b = s["relation"]
        assert seen.position(objects[0], rel, objects[1]) is True, f"the relation does not clearly hold: {sent!r}"
    if kind in ("colour", "size"):
        answered = any(k == target[0] and kind in d for k, d in zip(objects, s["named"]))
    elif kind in ("x", "y"):
        answered = s["axis"] == kind
    else:
        group = GROUPS[0] if kind == "material" else GROUPS[1]
        answered = any(matching(seen.objects, d) == target and p in group for d, p in s["props"])
    return 0 if answered else 1
