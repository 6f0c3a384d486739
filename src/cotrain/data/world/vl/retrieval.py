"""Caption retrieval of the V&L world: ``coco-ir`` and ``flickr-ir``.

The two tasks differ in scenes (``coco`` pool: 2-6 objects of both sizes; ``flickr`` pool: 1-3 large
objects) and in caption style:

- COCO-style: short noun phrases, lower case, "a red circle to the left of a small blue square",
  "an image with two green shapes and a star", "four objects, including a ...";
- Flickr-style: a full sentence with a verb and the backdrop, "A big purple diamond rests near the
  top of the frame against a dark backdrop.", "Three large shapes float side by side: ...".

A caption is built from *facts* it asserts (:func:`holds` checks them on any scene): ``("exists",
desc)``, ``("count", desc, n)``, ``("nobj", n)``, ``("rel", desc_a, rel, desc_b)`` (some matching pair
is in the relation), ``("side", desc, side)`` and ``("bg", "dark" | "light")``.

**Hard candidates** (train split): from the 31 other scenes of the caption's block of 32 rows of the
task's train stream (rows past ``n_train`` included, so a row's candidates do not depend on the split
size), the ``k`` that share the most ``(shape, colour)`` pairs with the true scene (multiset
intersection; ties: more shared shapes + colours, then the earlier row), skipping any scene on which
the caption could be true (every fact holds or is ambiguous); the next blocks when one block has
fewer. A row keeps :data:`N_CANDIDATES` of them, best first; training draws its
:data:`N_NEGATIVES` negatives from them every epoch, or takes the first ones always (12-in-1's fixed
offline mining; :mod:`cotrain.data.negatives`).
"""

from __future__ import annotations

import numpy as np

from ..scene import Scene
from .facts import Facts, describe, facts_for, random_desc
from .language import (
    NUMBER_WORDS,
    REL_WORDS,
    RELATIONS,
    SIDE_WORDS,
    noun_phrase,
    number_word,
    pick,
    rel_words,
    sentence,
)

BLOCK = 32
N_NEGATIVES = 3  # 12-in-1's multiple choice: the true image and 3 negatives
N_CANDIDATES = 12  # hard candidates kept per caption (tasks[].retrieval.candidates' default)
DARK, LIGHT = 70.0, 85.0  # background grey levels (mean RGB) for "dark" / "light" backdrops


def background_tone(scene: Scene) -> str | None:
    level = float(np.mean(scene.background.rgb))
    return "dark" if level < DARK else ("light" if level > LIGHT else None)


def holds(scene: Scene, fact: tuple, f: Facts | None = None) -> bool | None:
    """Whether ``fact`` is true on ``scene`` (None: it hinges on an ambiguous relation or side)."""
    f = f or facts_for(scene)
    kind = fact[0]
    if kind == "exists":
        return bool(f.match(fact[1]).any())
    if kind == "count":
        return int(f.match(fact[1]).sum()) == fact[2]
    if kind == "nobj":
        return f.k == fact[1]
    if kind == "bg":
        tone = background_tone(scene)
        return None if tone is None else tone == fact[1]
    if kind == "side":
        states = [f.side(k, fact[2]) for k in np.flatnonzero(f.match(fact[1]))]
        return True if any(s is True for s in states) else (None if any(s is None for s in states) else False)
    if kind == "rel":
        a, rel, b = np.flatnonzero(f.match(fact[1])), fact[2], np.flatnonzero(f.match(fact[3]))
        vals = f.T[RELATIONS.index(rel)][np.ix_(a, b)]
        pair = a[:, None] != b[None, :]
        if (vals[pair] == 1).any():
            return True
        return None if (vals[pair] == -1).any() else False
    raise ValueError(f"unknown fact {fact!r}")


def caption_possible(scene: Scene, facts: list[tuple]) -> bool:
    """The caption could describe ``scene``: no fact is clearly false."""
    f = facts_for(scene)
    return all(holds(scene, fact, f) is not False for fact in facts)


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _two_objects(f: Facts, rng) -> tuple[int, int]:
    i, j = rng.permutation(f.k)[:2].tolist()
    return i, j


def coco_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, list[tuple]]:
    f = facts_for(scene)
    objs = scene.objects
    i, j = _two_objects(f, rng)
    da, db = random_desc(rng, objs[i], 0.9), random_desc(rng, objs[j], 0.9)
    a, b = _a(noun_phrase(rng, da, post=False)), _a(noun_phrase(rng, db, post=False))
    rels = [r for r in RELATIONS if f.rel(i, r, j)]
    form = int(rng.integers(4))
    if form == 0 and rels:
        rel = pick(rng, rels)
        text = f"{a} {pick(rng, ('', 'sitting ', 'placed '))}{rel_words(rng, rel)} {b}"
        facts = [("rel", da, rel, db)]
    elif form == 1:
        key = pick(rng, ("colour", "shape"))
        d = describe(objs[i], (key,))
        n = int(f.match(d).sum())
        text = f"{number_word(rng, n, 0.0) if n > 1 else 'one'} {noun_phrase(rng, d, plural_form=n > 1, generic='shape')} and {b}"
        facts = [("count", d, n), ("exists", db)]
    elif form == 2:
        text = f"{NUMBER_WORDS[f.k]} {pick(rng, ('objects', 'shapes', 'things'))}, including {a} and {b}"
        facts = [("nobj", f.k), ("exists", da), ("exists", db)]
    else:
        text = f"{a} {pick(rng, ('and', 'next to', 'together with'))} {b}"
        facts = [("exists", da), ("exists", db)]
    prefix = pick(rng, ("", "", "a picture of ", "an image with ") + (("there is ",) if text.startswith("a") else ()))
    suffix = pick(rng, ("", "", " on a plain background", " in the picture"))
    return (prefix + text + suffix).strip(), facts


FLICKR_VERBS = ("rests", "sits", "floats", "hangs", "stands")
FLICKR_VERBS_PL = ("rest", "sit", "float", "hang", "stand")


def flickr_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, list[tuple]]:
    f = facts_for(scene)
    objs = scene.objects
    tone = background_tone(scene)
    facts: list[tuple] = []
    backdrop = ""
    if tone and rng.random() < 0.7:
        backdrop = f" against a {tone} {pick(rng, ('backdrop', 'canvas', 'wall'))}"
        facts.append(("bg", tone))
    i = int(rng.integers(f.k))
    da = random_desc(rng, objs[i], 0.95)
    # "big" only of a large object (always so in the flickr pool; the captions pools have small ones)
    big = pick(rng, ("big ", "large ", "")) if "size" not in da and objs[i].size == "large" else ""
    np_a = big + noun_phrase(rng, da, post=False)
    a = _a(np_a)
    verb = pick(rng, FLICKR_VERBS)
    if f.k == 1:
        sides = f.sides(i)
        where = ""
        if sides and rng.random() < 0.7:
            side = pick(rng, sides)
            where = f" {pick(rng, SIDE_WORDS[side])} of the frame"
            facts.append(("side", da, side))
        text = f"{pick(rng, ('a lone', 'a single', 'just one'))} {np_a} {verb}{where}{backdrop}"
        facts += [("nobj", 1), ("exists", da)]
        return sentence(text), facts
    j = int(pick(rng, [k for k in range(f.k) if k != i]))
    db = random_desc(rng, objs[j], 0.95)
    b = _a(noun_phrase(rng, db, post=False))
    rels = [r for r in RELATIONS if f.rel(i, r, j)]
    if rels and rng.random() < 0.6:
        rel = pick(rng, rels)
        text = f"{a} {verb} {pick(rng, REL_WORDS[rel])} {b}{backdrop}"
        facts += [("rel", da, rel, db)]
    else:
        count = NUMBER_WORDS[f.k]
        large = "large " if all(o.size == "large" for o in objs) else ""
        text = f"{count} {large}shapes {pick(rng, FLICKR_VERBS_PL)} side by side{backdrop}, among them {a} and {b}"
        facts += [("nobj", f.k), ("exists", da), ("exists", db)]
    return sentence(text), facts


CAPTIONS = {"coco-ir": coco_caption, "flickr-ir": flickr_caption}


def shared_score(a: Scene, b: Scene) -> tuple[int, int]:
    """(shared (shape, colour) pairs, shared shapes + shared colours) as multiset intersections."""
    ha, hb = facts_for(a).histograms, facts_for(b).histograms
    pairs = int(np.minimum(ha[0], hb[0]).sum())
    return pairs, int(np.minimum(ha[1], hb[1]).sum() + np.minimum(ha[2], hb[2]).sum())


def hard_negatives(true: Scene, facts: list[tuple], candidates: list[tuple[int, Scene]],
                   n: int = N_NEGATIVES) -> list[int]:
    """The image ids of (at most) the ``n`` candidates ``(image_id, scene)`` (in row order) that
    share the most attributes with ``true`` and on which the caption is clearly false, best first."""
    cands = [(i, s) for i, s in candidates if s.index != true.index]
    if not cands:
        return []
    ht = facts_for(true).histograms
    hs = [facts_for(s).histograms for _, s in cands]
    pairs = np.minimum(ht[0][None], np.stack([h[0] for h in hs])).sum(axis=1)
    singles = (np.minimum(ht[1][None], np.stack([h[1] for h in hs])).sum(axis=1)
               + np.minimum(ht[2][None], np.stack([h[2] for h in hs])).sum(axis=1))
    out = []
    for k in np.lexsort((np.arange(len(cands)), -singles, -pairs)).tolist():
        if not caption_possible(cands[k][1], facts):
            out.append(cands[k][0])
            if len(out) == n:
                break
    return out
