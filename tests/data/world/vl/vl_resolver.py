"""An independent reader of the world's ``refcoco`` expressions (test helper).

It parses the text alone -- strips the distractor fillers, finds the template by regular expressions,
maps synonyms back to attributes -- and resolves it on the scene graph. That it finds every target
shows that the words *in their order* determine the referent; the bag-of-words test shows that the
words without their order do not.
"""

from __future__ import annotations

import re

from cotrain.data.world.vl.facts import facts_for
from cotrain.data.world.vl.language import (
    COLOUR_WORDS,
    EXTREME_WORDS,
    FILLER_PREFIX,
    FILLER_SUFFIX,
    GENERIC_NOUNS,
    REL_WORDS,
    SHAPE_WORDS,
    SIDE_WORDS,
    SIZE_WORDS,
)

WORDS = {w.replace(" ", "_"): (key, value) for key, table in (("shape", SHAPE_WORDS), ("colour", COLOUR_WORDS),
                                                              ("size", SIZE_WORDS))
         for value, ws in table.items() for w in ws}
GENERIC = set(GENERIC_NOUNS) | {"one"}


def _alt(phrases) -> str:
    return "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))


REL = {p: rel for rel, ps in REL_WORDS.items() for p in ps}
EXT = {w: side for side, ws in EXTREME_WORDS.items() for w in ws}
SIDE = {p: side for side, ps in SIDE_WORDS.items() for p in ps}
PATTERNS = [
    ("landmark", re.compile(rf"the (.+?) that the (.+?) is ({_alt(REL)})")),
    ("with", re.compile(rf"the (.+?) with the (.+?) ({_alt(REL)}) it")),
    ("subject", re.compile(rf"the (.+?) ({_alt(REL)}) the (.+)")),
    ("extreme", re.compile(rf"the ({_alt(EXT)}) (.+)")),
    ("side", re.compile(rf"the (.+) ({_alt(SIDE)})")),
    ("plain", re.compile(r"the (.+)")),
]


def parse_np(text: str) -> dict | None:
    desc = {}
    text = re.sub(r" (that is|in) (?=\S+$)", " ", text)  # colour after the noun: "circle that is red"
    for token in text.replace("plus sign", "plus_sign").split():
        if token in WORDS:
            key, value = WORDS[token]
            if key in desc:
                return None
            desc[key] = value
        elif token not in GENERIC:
            return None
    return desc


def strip_fillers(text: str) -> str:
    for p in FILLER_PREFIX:
        if text.startswith(p):
            text = text[len(p):]
    for s in FILLER_SUFFIX:
        if text.endswith(s):
            text = text[: -len(s)]
    return text


def resolve(text: str, scene) -> int | None:
    """The index of the object ``text`` refers to in ``scene``, or None if it cannot be read."""
    f = facts_for(scene)
    text = strip_fillers(text)
    for form, pattern in PATTERNS:
        m = pattern.fullmatch(text)
        if not m:
            continue
        if form in ("landmark", "with", "subject"):
            if form == "subject":
                a, rel, b = parse_np(m[1]), REL[m[2]], parse_np(m[3])
            else:
                a, b, rel = parse_np(m[1]), parse_np(m[2]), REL[m[3]]
            if a is None or b is None or not a:
                continue
            land = [k for k in range(f.k) if f.match(b)[k]]
            if len(land) != 1:
                continue
            j = land[0]
            hits = [k for k in range(f.k) if k != j and f.match(a)[k]
                    and (f.rel(k, rel, j) if form == "subject" else f.rel(j, rel, k))]
        elif form == "extreme" or form == "side":
            side = EXT[m[1]] if form == "extreme" else SIDE[m[2]]
            a = parse_np(m[2] if form == "extreme" else m[1])
            if a is None:
                continue
            members = [k for k in range(f.k) if f.match(a)[k]]
            if len(members) == 1:
                hits = members if f.side(members[0], side) else []
            else:
                hits = [k for k in members if f.extreme(k, members, side)]
        else:
            a = parse_np(m[1])
            if not a:
                continue
            hits = [k for k in range(f.k) if f.match(a)[k]]
        if len(hits) == 1:
            return hits[0]
    return None
