"""Variable-length targets per example (a detection image's boxes and classes, ...).

A :class:`Ragged` holds N variable-length rows as one flat array ``values`` ``[M, ...]`` plus
``offsets`` int64 ``[N + 1]`` (row ``i`` is ``values[offsets[i]:offsets[i + 1]]``, so
``M = offsets[-1]``). It sits in a :class:`~cotrain.data.arrays.Split`'s ``arrays`` like any
per-row array; :meth:`Split.take <cotrain.data.arrays.Split.take>` turns it into a **list** of B
tensors, one per example of the batch: e.g. ``batch["target_boxes"]`` = ``[tensor [n_0, 4], ...,
tensor [n_{B-1}, 4]]`` and ``batch["target_classes"]`` = ``[tensor int64 [n_0], ...]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Ragged:
    """N rows of different lengths: ``values`` ``[M, ...]``, ``offsets`` int64 ``[N + 1]``."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        values, offsets = np.asarray(values), np.asarray(offsets)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise ValueError(f"Ragged offsets must be an integer array [N + 1], got dtype {offsets.dtype} "
                             f"shape {offsets.shape}")
        if values.ndim < 1:
            raise ValueError(f"Ragged values must be an array [M, ...], got a scalar of dtype {values.dtype}")
        if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != len(values):
            raise ValueError(f"Ragged offsets must start at 0, never decrease and end at len(values) = "
                             f"{len(values)}; got {offsets[:3].tolist()} ... {offsets[-1]}")
        self.values, self.offsets = values, offsets.astype(np.int64, copy=False)

    @classmethod
    def from_rows(cls, rows: Sequence, dtype=None, row_shape: tuple[int, ...] = ()) -> "Ragged":
        """From a list of N arrays ``[n_i, ...]``; ``dtype`` / ``row_shape`` (the trailing shape)
        fix the layout when every row is empty."""
        arrays = [np.asarray(r, dtype=dtype) for r in rows]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        nonempty = [a for a in arrays if len(a)]
        if nonempty:
            values = np.concatenate(nonempty)
        else:
            values = np.zeros((0, *row_shape), dtype=dtype if dtype is not None else np.float32)
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def lengths(self) -> np.ndarray:
        """int64 ``[N]``: the length of each row."""
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        """Row ``i``: ``values[offsets[i]:offsets[i + 1]]`` (a view)."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def rows(self, index) -> list[np.ndarray]:
        """The rows ``index`` (int array, bool mask or slice) as a list of arrays ``[n_i, ...]``."""
        return [self.row(int(i)) for i in np.arange(len(self))[index]]

    def __getitem__(self, index) -> "Ragged":
        """The rows ``index`` (int array, bool mask or slice) as a new Ragged, in that order."""
        picked = self.rows(index)
        return Ragged.from_rows(picked, dtype=self.values.dtype, row_shape=self.values.shape[1:])

    def __repr__(self) -> str:
        return f"Ragged(rows={len(self)}, values {self.values.dtype} {list(self.values.shape)})"
