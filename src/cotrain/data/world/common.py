"""Seeds, split indices and balanced labels shared by every world task.

- Each task works with its own seed ``task_seed(seed, name)`` (a hash of the user seed and the task
  name), so two tasks built with the same ``seed`` do not share scenes or noise.
- Example ``i`` of a split has the global index ``SPLIT_OFFSETS[split] + i``; train, val and test
  therefore never share an index (and so never share a scene). Everything random about an example
  is drawn from generators seeded with ``(task_seed, global index)``.
- Labels are balanced: the rows of each split are cut into blocks of ``K`` (the number of classes)
  and each block holds a seeded permutation of the ``K`` labels, so the first ``n`` rows of a split
  are balanced to within one example per class, yet a label is not predictable from its index.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
MAX_SPLIT_SIZE = 1_000_000
LABEL_SALT = 0x1ABE1
EXAMPLE_SALT = 0xE8A4
MASK63 = 2**63 - 1


def task_seed(seed: int, name: str) -> int:
    """A 62-bit seed for task ``name`` derived from the user ``seed`` (stable across runs/platforms)."""
    digest = hashlib.sha256(f"cotrain-world:{name}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def split_indices(split: str, n: int) -> np.ndarray:
    return SPLIT_OFFSETS[split] + np.arange(n, dtype=np.int64)


def example_rng(seed: int, index: int, salt: int = EXAMPLE_SALT) -> np.random.Generator:
    return np.random.default_rng((salt, int(seed) & MASK63, int(index) & MASK63))


def balanced_labels(seed: int, indices: np.ndarray, k: int) -> np.ndarray:
    """int64 labels in ``0..k-1`` for global ``indices``: a seeded permutation of the ``k`` labels per
    block of ``k`` consecutive rows of a split (blocks start at each split's first index)."""
    indices = np.asarray(indices, dtype=np.int64)
    labels = np.empty(len(indices), dtype=np.int64)
    perms: dict[tuple[int, int], np.ndarray] = {}
    for pos, index in enumerate(indices.tolist()):
        split_no, local = divmod(index, MAX_SPLIT_SIZE)
        block = (split_no, local // k)
        perm = perms.get(block)
        if perm is None:
            perm = np.random.default_rng((LABEL_SALT, int(seed) & MASK63, *block, k)).permutation(k)
            perms[block] = perm
        labels[pos] = perm[local % k]
    return labels


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
