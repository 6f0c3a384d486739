"""The real handwritten digits bundled with scikit-learn (1,797 greyscale 8x8 images, values 0..16).

They are split once, independently of any seed, into disjoint pools stratified by class: per digit
class, a fixed permutation (seed ``POOL_SEED``) puts the first 70 % in the train pool, the next 15 %
in val and the rest in test (1,258 / 269 / 270 images). A split asking for more examples than
its pool holds walks the pool again in a fresh seeded order ("epochs"), so each real digit recurs
with a different placement, size, colour, background and noise; it never borrows from another pool.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .common import MASK63

POOL_SEED = 20240917
POOL_FRACTIONS = (0.70, 0.15)  # train, val; test gets the rest
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@lru_cache(maxsize=1)
def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [1797, 8, 8] in 0..16, labels int64 [1797])``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=1)
def digit_pools() -> dict[str, np.ndarray]:
    """Disjoint index pools into :func:`load_sklearn_digits` for train / val / test (sorted)."""
    _, labels = load_sklearn_digits()
    rng = np.random.default_rng(POOL_SEED)
    pools: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_tr = int(round(POOL_FRACTIONS[0] * len(idx)))
        n_va = int(round(POOL_FRACTIONS[1] * len(idx)))
        pools["train"].append(idx[:n_tr])
        pools["val"].append(idx[n_tr : n_tr + n_va])
        pools["test"].append(idx[n_tr + n_va :])
    return {k: np.sort(np.concatenate(v)) for k, v in pools.items()}


def pool_draw(seed: int, split: str, n: int) -> np.ndarray:
    """Indices into the digit images for the first ``n`` examples of ``split``: epoch ``e`` of the
    pool is a permutation seeded by ``(seed, split, e)``."""
    pool = digit_pools()[split]
    split_id = ("train", "val", "test").index(split)
    out = []
    for epoch in range((n + len(pool) - 1) // len(pool)):
        perm = np.random.default_rng((0xD161, int(seed) & MASK63, split_id, epoch)).permutation(len(pool))
        out.append(pool[perm])
    return np.concatenate(out)[:n] if out else np.zeros(0, dtype=np.int64)
