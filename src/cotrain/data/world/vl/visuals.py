"""Pixels and region arrays of pool scenes, cached across builds (tasks sharing a scene render it once)."""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

import numpy as np

from ...stores import stack_store
from ..render import render_scene
from ..scene import Scene
from .regions import batch_proposals, pack_regions, scene_proposals
from .scenes import pool_scene, pool_seed

VISUAL_CACHE = 4096  # scenes whose pixels and proposals are kept between builds (about 50 MB at 48 px)


@lru_cache(maxsize=VISUAL_CACHE)
def _pixels(seed: int, image_id: int, size: int) -> np.ndarray:
    image = render_scene(pool_scene(seed, image_id, size))
    image.flags.writeable = False
    return image


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)


# (seed, image_id, image_size, max_regions) -> (regions [R, F], boxes [R, 4], region_mask [R])
_REGIONS = _LRU(VISUAL_CACHE)


class Visuals:
    """Pixels and proposals of pool scenes (kept in process-wide LRU caches, so tasks sharing a scene
    render it once)."""

    def __init__(self, seed: int, image_size: int, max_regions: int) -> None:
        self.seed, self.size, self.max_regions = seed, image_size, max_regions
        self.key = pool_seed(seed)

    def scene(self, image_id: int) -> Scene:
        return pool_scene(self.seed, int(image_id), self.size)

    def image(self, image_id: int) -> np.ndarray:
        return _pixels(self.seed, int(image_id), self.size)

    def proposals(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        return scene_proposals(self.scene(image_id), self.key, self.max_regions)

    def _standard(self, uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proposal arrays for ``uniq`` ids, computed in one batch for the ids not cached yet."""
        keys = [(self.seed, int(i), self.size, self.max_regions) for i in uniq]
        got = [_REGIONS.get_(k) for k in keys]
        missing = [n for n, g in enumerate(got) if g is None]
        if missing:
            images = np.stack([self.image(keys[n][1]) for n in missing])
            found = batch_proposals([self.scene(keys[n][1]) for n in missing], self.key, self.max_regions)
            boxes = [b for b, _ in found]
            for n, *value in zip(missing, *pack_regions(images, boxes, self.max_regions)):
                got[n] = tuple(v.copy() for v in value)
                _REGIONS.put(keys[n], got[n])
        return tuple(np.stack([g[k] for g in got]) for k in range(3))  # type: ignore[return-value]

    def arrays(self, ids: np.ndarray, box_lists: list[np.ndarray] | None = None) -> dict:
        """The visual columns of rows showing scenes ``ids`` (``[N]`` or ``[N, K]``): ``image_id``
        (= ``ids``), ``visual_index`` int64 (same shape) and ``visual``, a
        :class:`~cotrain.data.stores.VisualStore` with ``image`` uint8 ``[M, 3, S, S]``, ``regions``
        float16 ``[M, R, F]``, ``boxes`` float32 ``[M, R, 4]`` and ``region_mask`` bool ``[M, R]``.

        With the scenes' own proposals each distinct scene is stored once (M = distinct ids); with
        per-row pixel boxes ``box_lists`` (``[N]`` ids only: candidates of one expression) each row
        has its own store row (M = N)."""
        ids = np.asarray(ids, dtype=np.int64)
        flat = ids.reshape(-1)
        s, r = self.size, self.max_regions
        if len(flat) == 0:
            images = np.zeros((0, 3, s, s), np.uint8)
            regions, norm, mask = pack_regions(images, [], r)
            inv = np.zeros(0, dtype=np.int64)
        elif box_lists is None:  # distinct scenes in first-use order, so a prefix of rows keeps its indexes
            _, first, inv = np.unique(flat, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            uniq, inv = flat[first[order]], np.argsort(order)[inv.reshape(-1)]
            images = np.stack([self.image(i) for i in uniq])
            regions, norm, mask = self._standard(uniq)
        else:
            images = np.stack([self.image(i) for i in flat])
            regions, norm, mask = pack_regions(images, box_lists, r)
            inv = np.arange(len(flat))
        store = stack_store({"image": images, "regions": regions, "boxes": norm, "region_mask": mask})
        return {"image_id": ids, "visual_index": inv.astype(np.int64).reshape(ids.shape), "visual": store}
