"""Referring expressions of the V&L world: ``refcoco``, ``refcoco+``, ``refcocog``, ``pointing``,
``guesswhat``. Each picks a target object and words that single it out in the scene.

- ``refcoco`` (short, spatial words allowed): 55 % relational ("the circle left of the red square",
  "the circle that the red square is left of", "the circle with the red square to the left of it" --
  the last two name the relation from the landmark's side, so the relation word alone does not say
  which mentioned object is the target), 30 % absolute ("the left circle", "the red one at the top"),
  15 % plain appearance ("the small red circle").
- ``refcoco+`` (appearance words only -- no word of :data:`.language.SPATIAL_WORDS`): a unique description,
  sometimes with a contrast clause ("the red circle, not the blue one": same words as "the blue
  circle, not the red one", another target).
- ``refcocog`` (long, relational): the full description (size, colour, shape) with one or two
  relative clauses to landmarks, or an absolute position, plus a distractor sentence about another
  object.
- ``pointing`` (Visual7W-like "which" questions): the proposals are the 4 candidate boxes in a random
  order (the target and up to 3 other objects, distractor background boxes when the scene has fewer).
- ``guesswhat``: a yes/no dialog ("is it a circle? no. is it red? yes.") whose questions are chosen to
  split the remaining candidates as evenly as possible until one is left; the proposals are the
  objects' boxes (GuessWhat?!'s candidate list). The same questions with the answers swapped point at
  another object.

All five skip scenes in which every object has a twin (:func:`.facts.has_unique_object`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import Scene
from .facts import KEYS, Facts, describe, facts_for, pick_desc, random_desc
from .language import (
    COLOUR_WORDS,
    EXTREME_WORDS,
    FILLER_PREFIX,
    FILLER_SUFFIX,
    INVERSE,
    RELATIONS,
    SHAPE_WORDS,
    SIDE_WORDS,
    SIDES,
    SIZE_WORDS,
    noun_phrase,
    pick,
    rel_words,
    sentence,
    with_fillers,
)

N_CANDIDATES = 4  # pointing


@dataclass
class Ref:
    text: str
    target: int
    kind: str
    candidates: list[int] | None = None  # object indices offered as proposals (pointing, guesswhat)


def _np(rng, desc: dict, **kw) -> str:
    return noun_phrase(rng, desc, generic=None if desc else "one", **kw)


def relational_phrase(rng, f: Facts, i: int, subj: dict, rel: str, j: int) -> tuple[str, str]:
    """Words for "object ``i`` (``subj``) is ``rel`` object ``j``", in one of three orders; returns
    (text, form)."""
    a = _np(rng, subj, post=False)
    b = noun_phrase(rng, pick_desc(rng, f.unique(j)), post=False)
    form = pick(rng, ("subject", "subject", "landmark", "with"))
    if form == "subject":
        return f"the {a} {rel_words(rng, rel)} the {b}", form
    if form == "landmark":
        return f"the {a} that the {b} is {rel_words(rng, INVERSE[rel])}", form
    return f"the {a} with the {b} {rel_words(rng, INVERSE[rel])} it", form


def absolute_options(f: Facts) -> list[tuple[int, dict, str]]:
    """``(i, desc, side)``: object ``i`` is the clear ``side``-most of the objects matching ``desc``
    (or, when it is the only one, lies in that half of the canvas)."""
    out, seen = [], set()
    for i in range(f.k):
        for keys in ((), ("shape",), ("colour",), ("colour", "shape"), ("size", "shape"), KEYS):
            d = describe(f.scene.objects[i], keys)
            members = list(np.flatnonzero(f.match(d)))
            for side in SIDES:
                ok = f.extreme(i, members, side) if len(members) > 1 else f.side(i, side)
                key = (i, tuple(sorted(d.items())), side)
                if ok and key not in seen:
                    seen.add(key)
                    out.append((i, d, side))
    return out


def absolute_phrase(rng, desc: dict, side: str) -> str:
    if rng.random() < 0.5 and desc:
        return f"the {pick(rng, EXTREME_WORDS[side])} {_np(rng, desc, post=False)}"
    return f"the {_np(rng, desc, post=False)} {pick(rng, SIDE_WORDS[side])}"


# -- refcoco ---------------------------------------------------------------------------------------
def refcoco(scene: Scene, rng: np.random.Generator) -> Ref:
    f = facts_for(scene)
    r = rng.random()
    if r < 0.55:
        opts = f.relational(KEYS, allow_empty=False)
        needed = [o for o in opts if f.match(o[1]).sum() > 1]  # the relation is what singles it out
        if opts:
            i, subj, rel, j = pick(rng, needed if needed and rng.random() < 0.7 else opts)
            text, form = relational_phrase(rng, f, i, subj, rel, j)
            return Ref(with_fillers(rng, text, 0.05, 0.05), i, "relational-" + form)
    if r < 0.85:
        opts = absolute_options(f)
        if opts:
            i, d, side = pick(rng, opts)
            return Ref(with_fillers(rng, absolute_phrase(rng, d, side), 0.05, 0.05), i, "absolute")
    i = pick(rng, [i for i in range(f.k) if f.unique(i)])
    return Ref(with_fillers(rng, "the " + _np(rng, pick_desc(rng, f.unique(i))), 0.05, 0.05), i, "plain")


# -- refcoco+ --------------------------------------------------------------------------------------

def refcoco_plus(scene: Scene, rng: np.random.Generator) -> Ref:
    f = facts_for(scene)
    cands = [i for i in range(f.k) if f.unique(i)]
    if not cands:
        raise ValueError("refcoco+ needs an object with a unique appearance (see has_unique_object)")
    i = pick(rng, cands)
    desc = pick_desc(rng, f.unique(i), 0.5)
    others = [o for o in range(f.k) if o != i]
    if rng.random() < 0.35 and others:
        o = pick(rng, others)
        other = random_desc(rng, f.scene.objects[o])
        if not f.match(other)[i]:
            text = f"the {_np(rng, desc, post=False)}, not the {_np(rng, other, post=False)}"
            return Ref(text, i, "contrast")
    text = _np(rng, desc)
    text = pick(rng, (f"the {text}", f"the {text}", f"look at the {text}", f"this {text}"))
    prefixes = tuple(p for p in FILLER_PREFIX if "picture" in p or "image" in p)
    if rng.random() < 0.1:
        text = pick(rng, prefixes) + text
    if rng.random() < 0.1:
        text += pick(rng, FILLER_SUFFIX)
    return Ref(text, i, "appearance")


# -- refcocog --------------------------------------------------------------------------------------
def _refcocog_for(f: Facts, i: int, rng: np.random.Generator) -> tuple[str, str] | None:
    full = describe(f.scene.objects[i], KEYS)
    members = f.match(full)
    facts = [(rel, j) for r, rel in enumerate(RELATIONS) for j in range(f.k)
             if j != i and f.T[r, i, j] == 1 and f.unique(j) and not (f.T[r][members, j] == -1).any()]
    chosen, left = [], members.copy()
    for k in rng.permutation(len(facts)).tolist():  # clauses that remove candidates, sometimes one more
        rel, j = facts[k]
        keep = left & (f.T[RELATIONS.index(rel), :, j] == 1)
        if keep.sum() < left.sum() or (len(chosen) < 2 and rng.random() < 0.4):
            chosen.append((rel, j))
            left = keep
        if left.sum() == 1 and len(chosen) >= 1 + int(rng.random() < 0.4):
            break
    head = f"{pick(rng, ('the', 'a'))} {noun_phrase(rng, full, post=False)}"
    if left.sum() == 1 and chosen:
        clauses = [f"{rel_words(rng, rel)} the {noun_phrase(rng, pick_desc(rng, f.unique(j)), post=False)}"
                   for rel, j in chosen]
        verb = pick(rng, ("that is", "which is", "sitting", "that sits", "placed"))
        return f"{head} {verb} " + " and ".join(clauses), "relational"
    if members.sum() == 1:
        tail = pick(rng, ("which is easy to spot", "that stands out", "that you can clearly see"))
        return f"{head} {tail}", "plain"
    sides = [side for (k, d, side) in absolute_options(f) if k == i and d == full]
    if sides:
        side = pick(rng, sides)
        return f"{pick(rng, ('the', 'a'))} {noun_phrase(rng, full, post=False)} {pick(rng, SIDE_WORDS[side])}", "absolute"
    return None


def refcocog(scene: Scene, rng: np.random.Generator) -> Ref:
    f = facts_for(scene)
    for i in rng.permutation(f.k).tolist():
        got = _refcocog_for(f, i, rng)
        if got is not None:
            break
    else:
        raise ValueError("refcocog needs an object it can single out (see has_unique_object)")
    text, kind = got
    others = [o for o in range(f.k) if o != i]
    if others and rng.random() < 0.6:
        o = f.scene.objects[pick(rng, others)]
        text += pick(rng, (", and there is also a {n} in the picture", "; a {n} can be seen too",
                           ", not to be confused with the {n}")).format(n=noun_phrase(rng, random_desc(rng, o), post=False))
    return Ref(with_fillers(rng, text, 0.3, 0.0 if "picture" in text[-12:] else 0.3), i, kind)


# -- pointing --------------------------------------------------------------------------------------
def pointing(scene: Scene, rng: np.random.Generator) -> Ref:
    f = facts_for(scene)
    r = rng.random()
    ref = None
    if r < 0.35:
        opts = [(i, d) for i in range(f.k) for d in f.unique(i) if "colour" in d or "size" in d]
        if opts:
            i, d = pick(rng, opts)
            attr = pick(rng, [k for k in ("colour", "size") if k in d])
            rest = {k: v for k, v in d.items() if k != attr}
            word = pick(rng, (COLOUR_WORDS if attr == "colour" else SIZE_WORDS)[d[attr]])
            ref = Ref(f"which {_np(rng, rest, post=False) if rest else pick(rng, ('object', 'shape', 'one'))} is {word}?", i,
                      "attribute")
    elif r < 0.7:
        opts = f.relational(KEYS, allow_empty=True)
        if opts:
            i, subj, rel, j = pick(rng, opts)
            land = noun_phrase(rng, pick_desc(rng, f.unique(j)), post=False)
            noun = _np(rng, subj, post=False) if subj else pick(rng, ("object", "shape", "thing"))
            ref = Ref(f"which {noun} is {rel_words(rng, rel)} the {land}?", i, "relational")
    elif r < 0.85:
        opts = absolute_options(f)
        if opts:
            i, d, side = pick(rng, opts)
            noun = _np(rng, d, post=False) if d else pick(rng, ("object", "shape"))
            ref = Ref(f"which {noun} is {pick(rng, SIDE_WORDS[side])}?", i, "absolute")
    if ref is None:
        i = pick(rng, [i for i in range(f.k) if f.unique(i)])
        ref = Ref(f"which is the {_np(rng, pick_desc(rng, f.unique(i)), post=False)}?", i, "plain")
    others = [o for o in rng.permutation(f.k).tolist() if o != ref.target][: N_CANDIDATES - 1]
    ref.candidates = [ref.target] + others
    ref.text = sentence(ref.text, "")
    return ref


# -- guesswhat -------------------------------------------------------------------------------------
def _guess_questions(f: Facts, remaining: np.ndarray) -> list[tuple[str, dict, np.ndarray]]:
    """Yes/no questions as (kind, params, answers for every object), with no ambiguous answer among
    the remaining candidates."""
    objs = f.scene.objects
    out = []
    for key in KEYS:
        for value in sorted({getattr(objs[k], key) for k in np.flatnonzero(remaining)}):
            out.append(("attr", {key: value}, f.match({key: value})))
    for side in SIDES:
        states = [f.side(k, side) for k in range(f.k)]
        if all(states[k] is not None for k in np.flatnonzero(remaining)):
            out.append(("side", {"side": side}, np.asarray([bool(s) for s in states])))
    members = list(np.flatnonzero(remaining))
    for side in SIDES:
        for k in members:
            if f.extreme(k, members, side):
                out.append(("extreme", {"side": side}, np.arange(f.k) == k))
    for j in range(f.k):
        if remaining[j] or not f.unique(j):
            continue
        for r, rel in enumerate(RELATIONS):
            col = f.T[r, :, j]
            if not (col[remaining] == -1).any():
                out.append(("rel", {"rel": rel, "j": j}, col == 1))
    return out


def _guess_text(rng, f: Facts, kind: str, p: dict) -> str:
    if kind == "attr":
        (key, value), = p.items()
        if key == "shape":
            return f"is it a {pick(rng, SHAPE_WORDS[value])}?"
        words = COLOUR_WORDS if key == "colour" else SIZE_WORDS
        return pick(rng, ("is it {w}?", "is the object {w}?")).format(w=pick(rng, words[value]))
    if kind == "side":
        return f"is it {pick(rng, SIDE_WORDS[p['side']])}?"
    if kind == "extreme":
        return pick(rng, ("is it the {e} one?", "is it the {e} of them?")).format(e=pick(rng, EXTREME_WORDS[p["side"]]))
    land = noun_phrase(rng, pick_desc(rng, f.unique(p["j"])), post=False)
    return f"is it {rel_words(rng, p['rel'])} the {land}?"


def guesswhat(scene: Scene, rng: np.random.Generator) -> Ref:
    f = facts_for(scene)
    i = int(rng.integers(f.k))
    remaining = np.ones(f.k, dtype=bool)
    turns = []
    while remaining.sum() > 1:
        qs = _guess_questions(f, remaining)
        scored = []
        for kind, p, ans in qs:
            yes = int((ans & remaining).sum())
            split = min(yes, int(remaining.sum()) - yes)
            if split > 0:
                scored.append((split, kind, p, ans))
        if not scored:
            raise RuntimeError(f"guesswhat: no question separates the candidates of scene {scene.index}")
        best = max(s[0] for s in scored)
        pool = [s for s in scored if s[0] >= best - (1 if rng.random() < 0.4 else 0)]
        _, kind, p, ans = pick(rng, pool)
        turns.append(f"{_guess_text(rng, f, kind, p)} {'yes' if ans[i] else 'no'}.")
        remaining &= ans == ans[i]
    text = " ".join(turns)
    return Ref(text, i, f"dialog-{len(turns)}", candidates=rng.permutation(f.k).tolist())


GENERATORS = {
    "refcoco": refcoco,
    "refcoco+": refcoco_plus,
    "refcocog": refcocog,
    "pointing": pointing,
    "guesswhat": guesswhat,
}

