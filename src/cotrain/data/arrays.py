"""In-memory task data and a deterministic, resumable batch iterator.

Every source (the procedural world, an image/audio/video folder, a text TSV) produces a
:class:`TaskData`: three :class:`Split` objects holding NumPy arrays with one row per example.

Array keys and layouts (N = examples):

- ``image``: uint8 ``[N, 3, H, W]``
- ``video``: uint8 ``[N, T, 3, H, W]``
- ``audio``: float32 ``[N, S]`` mono waveform at ``TaskData.sample_rate``
- ``text``: int64 ``[N, L]`` token ids, 0 = padding
- ``label``: int64 ``[N]`` (single label) or float32 ``[N, C]`` (multi-label targets in [0, 1])

The :class:`BatchIterator` draws batches from a split in a seeded permutation per epoch; its whole
state is ``(epoch, position)``, so it resumes exactly without storing the permutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

INPUT_KEYS = ("image", "video", "audio", "text")


@dataclass
class Split:
    """One split of one task: arrays with a shared first dimension."""

    arrays: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        sizes = {k: len(v) for k, v in self.arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"arrays of one split differ in length: {sizes}")
        if "label" not in self.arrays:
            raise ValueError("a split needs a `label` array")

    def __len__(self) -> int:
        return len(self.arrays["label"])

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(k for k in INPUT_KEYS if k in self.arrays)

    def take(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Rows ``index`` as a batch of tensors (``torch.from_numpy`` on the gathered rows); string
        arrays (``text_raw``) stay out of batches."""
        return {
            k: torch.from_numpy(np.ascontiguousarray(v[index]))
            for k, v in self.arrays.items()
            if v.dtype.kind not in "USO"
        }

    def subset(self, index: np.ndarray) -> "Split":
        return Split({k: v[index] for k, v in self.arrays.items()})


@dataclass
class TaskData:
    """All splits of one task plus what a head and an encoder need to know about it."""

    name: str
    modality: str  # the input key the task reads: image | video | audio | text; "vl" for V&L tasks
    class_names: list[str]
    train: Split
    val: Split
    test: Split
    multilabel: bool = False
    sample_rate: int | None = None  # audio only
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            need = ("text", "text_raw") if self.modality == "vl" else (self.modality,)
            if not any(k in split.arrays for k in need):
                raise ValueError(f"task {self.name!r}: {split_name} split has no {' or '.join(map(repr, need))} array")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)


class BatchIterator:
    """Endless batches from a split: a fresh seeded permutation per epoch, last partial batch dropped
    when the split has at least one full batch.

    The permutation of epoch ``e`` is drawn from ``np.random.default_rng((seed, e))``, so the
    iterator state is just ``(epoch, position)``.
    """

    def __init__(self, split: Split, batch_size: int, seed: int) -> None:
        if len(split) == 0:
            raise ValueError("cannot iterate over an empty split")
        self.split = split
        self.batch_size = min(batch_size, len(split))
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.split))

    def next_index(self) -> np.ndarray:
        if self.position + self.batch_size > len(self._perm):
            self.epoch += 1
            self.position = 0
            self._perm = self._permutation(self.epoch)
        idx = self._perm[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return idx

    def __next__(self) -> dict[str, torch.Tensor]:
        return self.split.take(np.sort(self.next_index()))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._perm = self._permutation(self.epoch)


def iterate_once(split: Split, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """All rows of a split in order, in batches (evaluation)."""
    for start in range(0, len(split), batch_size):
        yield split.take(np.arange(start, min(start + batch_size, len(split))))
