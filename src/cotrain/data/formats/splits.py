"""Deterministic, stratified train / val / test splits shared by the folder and TSV readers.

Each class is split on its own, with a generator seeded from ``(seed, crc32(class name))``: the
split of one class does not change when classes are added or removed, nor with the order in which
files were found (rows are sorted by the caller first).

Per class of ``n`` examples, ``round_half_up(n * fraction)`` go to val and to test, but at least one
each when the fraction is positive, and always at least one stays in train (so a class with one
example is train-only, with two it gets train plus val or test).
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` for one class of ``n`` examples."""
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0):
        raise ValueError(f"val_fraction and test_fraction must lie in [0, 1); got {val_fraction}, {test_fraction}")
    if n <= 1:
        return n, 0, 0
    n_val = max(1, _half_up(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, _half_up(n * test_fraction)) if test_fraction > 0 else 0
    while n_val + n_test > n - 1:  # keep at least one training example
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def class_seed(seed: int, class_name: str) -> tuple[int, int]:
    return (int(seed) & 0xFFFFFFFF, zlib.crc32(class_name.encode("utf-8")))


def stratified_split(
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Row indices of each split, stratified by ``labels`` (class ids into ``class_names``).

    Returns ``{"train", "val", "test"}`` → sorted int64 index arrays (rows keep their input order).
    """
    labels = np.asarray(labels)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c, cname in enumerate(class_names):
        rows = np.flatnonzero(labels == c)
        n_train, n_val, n_test = split_counts(len(rows), val_fraction, test_fraction)
        perm = rows[np.random.default_rng(class_seed(seed, cname)).permutation(len(rows))]
        parts["val"].append(perm[:n_val])
        parts["test"].append(perm[n_val : n_val + n_test])
        parts["train"].append(perm[n_val + n_test :])
    return {s: np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for s, p in parts.items()}


def carve_missing_splits(
    splits: dict[str, list], labels: np.ndarray, class_names: list[str], *, val_fraction: float,
    test_fraction: float, seed: int,
) -> dict[str, list]:
    """Fill an empty ``val`` and/or ``test`` of ``splits`` with a stratified share of ``train``.

    ``labels`` are the class ids of ``splits["train"]``; splits that were given stay as they are.
    """
    carve_val, carve_test = not splits.get("val"), not splits.get("test")
    out = {k: list(v) for k, v in splits.items()}
    if not (carve_val or carve_test):
        return out
    train = out["train"]
    idx = stratified_split(
        labels,
        class_names,
        val_fraction=val_fraction if carve_val else 0.0,
        test_fraction=test_fraction if carve_test else 0.0,
        seed=seed,
    )
    out["train"] = [train[i] for i in idx["train"]]
    if carve_val:
        out["val"] = [train[i] for i in idx["val"]]
    if carve_test:
        out["test"] = [train[i] for i in idx["test"]]
    return out
