"""The shared scene pools of the V&L world and each task's split streams.

**Pools.** Like COCO, scenes belong to a pool, not to a task: scene ``image_id`` of the world
``seed`` is ``make_scene(pool_seed(seed), image_id, ...)`` with the pool's scene parameters, the same
in every task that uses it. Four pools exist:

- ``coco`` (``image_id`` 0 ..): 2-6 objects of both sizes, used by ``vqa``, ``vgqa``, ``gqa``,
  ``coco-ir``, the five referring-expression tasks and ``nlvr``;
- ``flickr`` (``image_id`` from :data:`FLICKR_BASE`): 1-3 large objects, used by ``flickr-ir`` and
  ``snli-ve`` (as SNLI-VE is built on Flickr30k images);
- ``cc`` (``image_id`` from :data:`CC_BASE`): the ``coco`` distribution (2-6 objects of both sizes,
  backgrounds of grey level 45-110) at image ids of its own, for the pretraining task ``captions``
  (Conceptual Captions' role: pretraining never sees a downstream image);
- ``cc-shift`` (``image_id`` from :data:`CC_SHIFT_BASE`): a shifted distribution for
  ``captions-shift``: 3-6 objects, all small, on light backgrounds (grey level 140-200, where every
  other pool has 45-110), so both the background crops and the object crops of the region
  features move (brighter, and objects fill less of a proposal).

**Streams.** Each task walks its pool in ``image_id`` order. A task-keyed hash ``u(task, id)`` in
[0, 1) says whether the task uses scene ``id`` at all (``u < share``, the pool's share rate) and in
which split: test when ``u < 0.15·share``, val when ``u < 0.30·share``, train otherwise. Row ``i`` of a
split is the ``i``-th used scene of that split (scenes a task cannot use, see ``eligible``, are
skipped). So a task's splits never share a scene, a row depends on ``(seed, task, split, i)`` only
(not on the split sizes), and since every task draws its own hash over the *same* pool, one task's
test scenes turn up in other tasks' train splits, as RefCOCO's test images sit in VQA's train set.
The clean split (drop from train / val every row whose scene is in any task's test split) therefore
removes a bounded fraction, about ``1 - (1 - 0.15·share)^(tasks in the pool - 1)`` of each split:
measured on the twelve tasks at 1000 / 200 / 200, seed 0, 8 % of the rows' own scenes (before
generator version 3 the retrieval train rows' fixed hard negatives counted too, 11.4 %; their hard
candidates now lose only the test scenes among them, the rows stay). ``tests/data/world/vl/test_vl_scenes.py`` checks the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from ..common import task_seed
from ..scene import BACKGROUND_GREY, SIZES, Scene, make_scene

POOL_NAME = "vl-scene-pool"
FLICKR_BASE = 1 << 32
CC_BASE = 2 << 32
CC_SHIFT_BASE = 3 << 32
SPLIT_FRACTIONS: dict[str, float] = {"test": 0.15, "val": 0.15, "train": 0.70}
CHUNK = 4096


@dataclass(frozen=True)
class Pool:
    name: str
    base: int  # first image_id
    n_objects: tuple[int, int]
    sizes: tuple[str, ...]
    share: float  # fraction of the pool's scenes one task uses
    background_grey: tuple[float, float] = BACKGROUND_GREY  # range of the background's grey level


POOLS: dict[str, Pool] = {
    "coco": Pool("coco", 0, (2, 6), tuple(SIZES), 0.075),
    "flickr": Pool("flickr", FLICKR_BASE, (1, 3), ("large",), 0.5),
    "cc": Pool("cc", CC_BASE, (2, 6), tuple(SIZES), 0.5),
    "cc-shift": Pool("cc-shift", CC_SHIFT_BASE, (3, 6), ("small",), 0.5, (140.0, 200.0)),
}
_BY_BASE = sorted(POOLS.values(), key=lambda p: p.base, reverse=True)


def pool_seed(seed: int) -> int:
    """The seed every pool scene of the world ``seed`` is drawn from (independent of the task)."""
    return task_seed(seed, POOL_NAME)


def pool_of(image_id: int) -> Pool:
    """The pool an image id belongs to (the one with the largest base at most ``image_id``)."""
    return next(p for p in _BY_BASE if int(image_id) >= p.base)


@lru_cache(maxsize=8192)
def pool_scene(seed: int, image_id: int, image_size: int) -> Scene:
    """The scene ``image_id`` of the world ``seed`` (its pool follows from the id). Cached: do not
    mutate the returned scene."""
    pool = pool_of(image_id)
    return make_scene(
        pool_seed(seed), int(image_id), image_size=int(image_size), n_objects=pool.n_objects, sizes=pool.sizes,
        background_grey=pool.background_grey,
    )


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_uniform(key: int, positions: np.ndarray) -> np.ndarray:
    """float64 in [0, 1) for each position, a fixed function of ``(key, position)``."""
    k = _mix64(np.asarray([int(key) & (2**64 - 1)], dtype=np.uint64))[0]
    h = _mix64(np.asarray(positions, dtype=np.uint64) ^ k)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def split_of(u: np.ndarray, share: float) -> np.ndarray:
    """0 train, 1 val, 2 test, -1 unused, for hash values ``u``."""
    t = share * SPLIT_FRACTIONS["test"]
    v = t + share * SPLIT_FRACTIONS["val"]
    return np.where(u < t, 2, np.where(u < v, 1, np.where(u < share, 0, -1))).astype(np.int8)


SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


class SceneStream:
    """The scenes task ``task`` uses, per split, in pool order (see the module docstring).

    ``ids(split, count)`` gives the first ``count`` image ids of a split; the scan is kept, so asking
    again for more continues where it stopped. ``eligible(scene) -> bool`` skips scenes the task
    cannot use (a fixed property of the scene, so rows stay independent of the split sizes).
    """

    def __init__(
        self,
        task: str,
        seed: int,
        pool: str,
        image_size: int,
        eligible: Callable[[Scene], bool] | None = None,
    ) -> None:
        self.task, self.seed, self.pool, self.image_size = task, int(seed), POOLS[pool], int(image_size)
        self.key = task_seed(seed, f"vl-stream:{task}")
        self.eligible = eligible
        self._found: dict[str, list[int]] = {s: [] for s in SPLIT_CODE}
        self._pending: dict[str, list[int]] = {s: [] for s in SPLIT_CODE}
        self._cursor: dict[str, int] = {s: 0 for s in SPLIT_CODE}
        self._next = 0  # next pool position to hash

    def scene(self, image_id: int) -> Scene:
        return pool_scene(self.seed, int(image_id), self.image_size)

    def _scan(self) -> None:
        pos = np.arange(self._next, self._next + CHUNK, dtype=np.int64)
        self._next += CHUNK
        which = split_of(hash_uniform(self.key, pos), self.pool.share)
        for split, code in SPLIT_CODE.items():
            self._pending[split].extend((pos[which == code] + self.pool.base).tolist())

    def ids(self, split: str, count: int) -> np.ndarray:
        found, pending = self._found[split], self._pending[split]
        while len(found) < count:
            if self._cursor[split] >= len(pending):
                self._scan()
                continue
            image_id = pending[self._cursor[split]]
            self._cursor[split] += 1
            if self.eligible is None or self.eligible(self.scene(image_id)):
                found.append(image_id)
        return np.asarray(found[:count], dtype=np.int64)
