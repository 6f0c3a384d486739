"""An independent reader of ``text-para`` rows (test helper).

It reads each description from its words (one clause: "there is a X" and the like, "the X is
<property>", "the X is <relation> the Y"; fillers and the distractor sentences of :mod:`nli_reader`
skipped; synonyms mapped back to attributes) and writes down what it states, objects identified by
their shape (a row's two objects differ in shape): the attributes each object is named by, the
relation as (object, axis, direction, object) with the objects in a fixed order (so "the box is
right of the disc" and "the disc is left of the box" state the same thing), and the property given
to each object. Two descriptions are paraphrases when they state the same. The first description
must also be true of the scene re-created from the row's ``image_id`` (every stated attribute as on
the scene, the relation clearly holding).
"""

from __future__ import annotations

import re

from nli_reader import DISTRACTORS, FILLERS, PROP_RE, REL_RE, RELATION, Scene, parse_np, strip_article

OBJECT_PATTERNS = [r"there is (an? .+)", r"the picture shows (an? .+)", r"you can see (an? .+)",
                   r"(an? .+) is in the picture"]


def _name(stated: dict, desc: dict, sentence: str) -> str:
    """Record the attributes ``desc`` names its object by; the object is its shape."""
    assert "shape" in desc, f"an object named without its shape in {sentence!r}"
    attrs = stated["attributes"].setdefault(desc["shape"], {})
    for key, value in desc.items():
        assert attrs.get(key, value) == value, f"{desc['shape']} named two ways in one description: {sentence!r}"
        attrs[key] = value
    return desc["shape"]


def read_description(text: str) -> dict:
    """``{"attributes": {shape: {key: value}}, "relation": tuple | None, "properties": {shape: prop},
    "raw_relation": (shape, rel, shape) | None}``."""
    stated = {"attributes": {}, "relation": None, "properties": {}, "raw_relation": None}
    facts = 0
    for sentence in re.split(r"(?<=\.) ", text.strip()):
        s = sentence.rstrip(".")
        s = s[:1].lower() + s[1:]
        for filler in FILLERS:
            s = s[len(filler):] if s.startswith(filler) else s
        if s in DISTRACTORS:
            continue
        facts += 1
        m = re.fullmatch(rf"the (.+) is ({PROP_RE})", s)
        if m:
            stated["properties"][_name(stated, parse_np(m[1]), sentence)] = m[2]
            continue
        m = re.fullmatch(rf"the (.+) is ({REL_RE}) the (.+)", s)
        if m:
            a, b = _name(stated, parse_np(m[1]), sentence), _name(stated, parse_np(m[3]), sentence)
            axis, sign = RELATION[m[2]]
            stated["relation"] = (a, axis, sign, b) if a < b else (b, axis, -sign, a)
            stated["raw_relation"] = (a, m[2], b)
            continue
        hits = [m[1] for pattern in OBJECT_PATTERNS if (m := re.fullmatch(pattern, s))]
        assert len(hits) == 1, f"unread sentence {sentence!r}"
        _name(stated, parse_np(strip_article(hits[0])), sentence)
    assert facts == 1, f"a description states one clause, not {facts}: {text!r}"
    return stated


def true_of(stated: dict, scene) -> bool:
    seen = Scene(scene)
    by_shape = {o["shape"]: k for k, o in enumerate(seen.objects)}
    for shape, attrs in stated["attributes"].items():
        if shape not in by_shape or any(seen.objects[by_shape[shape]][k] != v for k, v in attrs.items()):
            return False
    if stated["raw_relation"] is not None:
        a, rel, b = stated["raw_relation"]
        return seen.position(by_shape[a], rel, by_shape[b]) is True
    return True


def read_para_label(text: str, scene) -> int:
    """The label (0 not_paraphrase, 1 paraphrase) of a row's text; checks the first description
    against ``scene``."""
    a_text, b_text = text.split(" [SEP] ")
    a, b = read_description(a_text), read_description(b_text)
    assert true_of(a, scene), f"the first description is not true of the scene: {a_text!r}"
    same = all(a[k] == b[k] for k in ("attributes", "relation", "properties"))
    return 1 if same else 0
