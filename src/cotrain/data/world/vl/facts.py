"""Scene logic the V&L generators share: attribute matching, unique descriptions, relations.

A *description* is a dict with some of the keys ``shape``, ``colour``, ``size`` (canonical values of
:mod:`cotrain.data.world.scene`); an object *matches* it when it has every given attribute.

Relations compare object centres with a margin of ``max(2, 0.06·S)`` pixels (``S`` = the canvas
side): a relation is True / False when the centres differ by more than the margin along its axis, and
None (ambiguous: never asserted or denied by a generator) otherwise. The same holds for the halves of
the canvas (``side_state``) and for "the leftmost of" (``is_extreme``).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..scene import COLOUR_NAMES, MAX_OBJECTS, SHAPES, SIZES, Scene, SceneObject
from .language import RELATIONS, SIDES, pick

KEYS: tuple[str, ...] = ("shape", "colour", "size")
_VALUES = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES}


def margin(scene: Scene) -> float:
    return max(2.0, 0.06 * scene.image_size)


def centres(scene: Scene) -> np.ndarray:
    """``[K, 2]`` object centres (x, y) in pixels."""
    return np.asarray([o.center for o in scene.objects], dtype=np.float64).reshape(-1, 2)


def rel_state(scene: Scene, i: int, rel: str, j: int) -> bool | None:
    """Whether object ``i`` is ``rel`` object ``j`` (True / False), None when within the margin."""
    c = centres(scene)
    axis = 0 if rel in ("left_of", "right_of") else 1
    sign = -1.0 if rel in ("left_of", "above") else 1.0
    d = sign * (c[i, axis] - c[j, axis])
    m = margin(scene)
    return True if d > m else (False if d < -m else None)


def side_state(scene: Scene, i: int, side: str) -> bool | None:
    """Whether object ``i`` lies in the ``side`` half of the canvas (None near the middle line)."""
    axis, sign = SIDES[side]
    d = sign * (scene.objects[i].center[axis] - scene.image_size / 2.0)
    m = margin(scene)
    return True if d > m else (False if d < -m else None)


def is_extreme(scene: Scene, i: int, members: list[int], side: str) -> bool:
    """Object ``i`` is the clear ``side``-most of ``members`` (by more than the margin)."""
    axis, sign = SIDES[side]
    c = centres(scene)
    m = margin(scene)
    return all(sign * (c[i, axis] - c[k, axis]) > m for k in members if k != i)


def matches(obj: SceneObject, desc: dict) -> bool:
    return all(getattr(obj, k) == v for k, v in desc.items())


def matching(scene: Scene, desc: dict) -> list[int]:
    return [k for k, o in enumerate(scene.objects) if matches(o, desc)]


def describe(obj: SceneObject, keys) -> dict:
    return {k: getattr(obj, k) for k in ("size", "colour", "shape") if k in keys}


def unique_descs(scene: Scene, i: int, keys=("shape", "colour", "size")) -> list[dict]:
    """All non-empty descriptions over ``keys`` that only object ``i`` matches (smallest first)."""
    out = []
    for r in range(1, len(keys) + 1):
        for sub in itertools.combinations(keys, r):
            d = describe(scene.objects[i], sub)
            if matching(scene, d) == [i]:
                out.append(d)
    return out


def pick_desc(rng: np.random.Generator, options: list[dict], minimal_bias: float = 0.6) -> dict:
    """A description from ``options`` (smallest first): the smallest with probability
    ``minimal_bias``, else any."""
    if rng.random() < minimal_bias:
        smallest = min(len(d) for d in options)
        options = [d for d in options if len(d) == smallest]
    return dict(pick(rng, options))


def random_desc(rng: np.random.Generator, obj: SceneObject, p_shape: float = 0.8) -> dict:
    """A random non-empty description that ``obj`` matches (shape with probability ``p_shape``)."""
    while True:
        keys = [k for k, p in (("shape", p_shape), ("colour", 0.6), ("size", 0.3)) if rng.random() < p]
        if keys:
            return describe(obj, keys)


def absent_desc(rng: np.random.Generator, scene: Scene, n_keys: int | None = None) -> dict:
    """A description (shape + colour, sometimes + size) that no object of ``scene`` matches."""
    for _ in range(200):
        d = {"shape": pick(rng, SHAPES), "colour": pick(rng, COLOUR_NAMES)}
        if (n_keys or (3 if rng.random() < 0.25 else 2)) == 3:
            d = {"size": pick(rng, ("small", "large")), **d}
        if not matching(scene, d):
            return d
    raise RuntimeError("no absent description found")


def has_unique_object(scene: Scene) -> bool:
    """Some object differs in appearance from all others (False when every object has a twin, about
    1 % of two-object scenes). Tasks that must name an object skip scenes without one."""
    f = facts_for(scene)
    return any(f.unique(i) for i in range(f.k))


_SIDE_INDEX = {s: k for k, s in enumerate(SIDES)}
_BITS = ((np.arange(1 << MAX_OBJECTS)[:, None] >> np.arange(MAX_OBJECTS)[None, :]) & 1).astype(bool)  # mask -> [6] bools


def _subsets(keys, allow_empty: bool):
    return [s for r in range(0 if allow_empty else 1, len(keys) + 1) for s in itertools.combinations(keys, r)]


class Facts:
    """Vectorised facts of one scene: attribute ids, the relation table and relational descriptions.

    ``T[r, i, j]`` (int8) is 1 when object ``i`` is ``RELATIONS[r]`` object ``j``, 0 when it is not,
    -1 when ambiguous (and on the diagonal)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.k = len(scene.objects)
        self.ids = {key: np.asarray([_VALUES[key].index(getattr(o, key)) for o in scene.objects], dtype=np.int64)
                    for key in KEYS}
        self.c = centres(scene)
        self.m = m = margin(scene)
        dx = self.c[:, None, 0] - self.c[None, :, 0]  # x_i - x_j
        dy = self.c[:, None, 1] - self.c[None, :, 1]
        d = np.stack([-dx, dx, -dy, dy])  # left_of, right_of, above, below (RELATIONS order)
        t = np.where(d > m, 1, np.where(d < -m, 0, -1)).astype(np.int8)
        t[:, np.arange(self.k), np.arange(self.k)] = -1
        # halves of the canvas: left, right, top, bottom (SIDES order)
        h = self.c - scene.image_size / 2.0
        e = np.stack([-h[:, 0], h[:, 0], -h[:, 1], h[:, 1]])
        self.S = np.where(e > m, 1, np.where(e < -m, 0, -1)).astype(np.int8)
        self.T = t
        self._unique: dict[tuple, list[dict]] = {}
        # bit masks of the objects having each attribute value: matching is a few integer ANDs
        self._bits: dict[tuple[str, str], int] = {}
        for k, o in enumerate(scene.objects):
            for key in KEYS:
                self._bits[(key, getattr(o, key))] = self._bits.get((key, getattr(o, key)), 0) | (1 << k)
        self._all = (1 << self.k) - 1

    def mask(self, desc: dict) -> int:
        """Bit mask of the objects matching ``desc``."""
        m = self._all
        for item in desc.items():
            m &= self._bits.get(item, 0)
        return m

    @property
    def histograms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts of (shape, colour) pairs, shapes and colours (for multiset intersections)."""
        if not hasattr(self, "_hist"):
            s, c = self.ids["shape"], self.ids["colour"]
            n_c = len(COLOUR_NAMES)
            self._hist = (np.bincount(s * n_c + c, minlength=len(SHAPES) * n_c),
                          np.bincount(s, minlength=len(SHAPES)), np.bincount(c, minlength=n_c))
        return self._hist

    def match(self, desc: dict) -> np.ndarray:
        """bool ``[K]``: which objects match ``desc``."""
        return _BITS[self.mask(desc), : self.k].copy()

    def rel(self, i: int, rel: str, j: int) -> bool | None:
        v = int(self.T[RELATIONS.index(rel), i, j])
        return None if v < 0 else bool(v)

    def unique(self, i: int, keys=KEYS) -> list[dict]:
        """Descriptions over ``keys`` only object ``i`` matches, smallest first."""
        key = (i, tuple(keys))
        if key not in self._unique:
            obj, target = self.scene.objects[i], 1 << i
            out = []
            for sub in _subsets(keys, False):
                d = describe(obj, sub)
                if self.mask(d) == target:
                    out.append(d)
            self._unique[key] = out
        return self._unique[key]

    def relational(self, subject_keys=KEYS, *, allow_empty: bool = True, landmark_keys=KEYS,
                   rels=RELATIONS) -> list[tuple[int, dict, str, int]]:
        """Every ``(i, subject, rel, j)`` such that object ``i`` is the only object other than ``j``
        that matches ``subject`` (a description over ``subject_keys``, maybe empty) and is ``rel``
        object ``j``, with no ambiguous case among the objects matching ``subject``, and ``j`` has a
        unique description over ``landmark_keys``."""
        if self.k < 2:
            return []
        descs, seen = [], set()
        for i in range(self.k):
            for sub in _subsets(subject_keys, allow_empty):
                d = describe(self.scene.objects[i], sub)
                key = tuple(sorted(d.items()))
                if key not in seen:
                    seen.add(key)
                    descs.append(d)
        mem = _BITS[[self.mask(d) for d in descs], : self.k]  # [D, K]
        r_idx = [RELATIONS.index(r) for r in rels]
        T = self.T[r_idx]  # [R, K_i, K_j]
        off = ~np.eye(self.k, dtype=bool)
        memb = mem[:, None, :, None] & off[None, None]  # [D, 1, K, K]
        true = memb & (T == 1)[None]
        n_true = true.sum(axis=2)
        amb = (memb & (T == -1)[None]).any(axis=2)
        land = np.asarray([bool(self.unique(j, landmark_keys)) for j in range(self.k)])
        valid = (n_true == 1) & ~amb & land[None, None, :]
        target = true.argmax(axis=2)
        return [(int(target[d, r, j]), descs[d], rels[r], int(j)) for d, r, j in zip(*np.nonzero(valid))]

    def side(self, i: int, side: str) -> bool | None:
        """Like :func:`side_state`."""
        v = int(self.S[_SIDE_INDEX[side], i])
        return None if v < 0 else bool(v)

    def sides(self, i: int) -> list[str]:
        return [s for s in SIDES if self.S[_SIDE_INDEX[s], i] == 1]

    def extreme(self, i: int, members, side: str) -> bool:
        """Like :func:`is_extreme`."""
        axis, sign = SIDES[side]
        others = [k for k in members if k != i]
        return bool((sign * (self.c[i, axis] - self.c[others, axis]) > self.m).all())


def facts_for(scene: Scene) -> Facts:
    """:class:`Facts` of ``scene``, computed once and kept on the scene object (as the private
    attribute ``_vl_facts``, which is not a dataclass field: equality and ``to_dict`` ignore it)."""
    f = scene.__dict__.get("_vl_facts")
    if f is None or f.k != len(scene.objects):
        f = Facts(scene)
        scene.__dict__["_vl_facts"] = f
    return f
