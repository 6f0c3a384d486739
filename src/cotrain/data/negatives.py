"""Retrieval training views: each caption's image and its negatives, drawn per epoch and per batch.

A retrieval train split keeps, per caption, its own image (``visual_index`` / ``image_id`` int64
``[N]``) and C hard candidate images (``candidate_index`` / ``candidate_id`` int64 ``[N, C]``, best
first, -1 where there is none - the clean split masks test images): the world ranks them by shared
attributes, the real-data readers by feature similarity. Each image is stored once in the split's
``visual`` store. :class:`NegativeSampler` builds a training batch of such a split with a view axis,
``K = 1 + negatives + random_negatives`` (``tasks[].retrieval``):

- view 0: the caption's own image (``label`` 0: what the retrieval head's multiple choice expects);
- views ``1 .. negatives``: hard negatives from the row's candidates. ``mining: per_epoch``: a fresh
  draw without replacement every epoch, from ``np.random.default_rng((seed, epoch, 0, row))`` - the
  same row in the same epoch draws the same whatever its batch, so a resumed run draws alike;
  ``fixed``: the first ``negatives`` candidates, always (12-in-1's offline mining);
- the last ``random_negatives`` views: images of other rows of the same batch whose ``image_id``
  differs from the row's, drawn per batch from ``np.random.default_rng((seed, epoch, 1, batch))``
  (distinct images while the batch has enough).

A row with fewer usable candidates than ``negatives`` fills the rest like random negatives; a row
with no other image in its batch takes its random negatives from its candidates instead; a row with
neither raises :class:`~cotrain.data.errors.DataError`.

The batch is the split's (:meth:`~cotrain.data.arrays.Split.take`) with the store gathered through
the drawn views - ``regions [B, K, R, F]``, ``boxes [B, K, R, 4]``, ``region_mask [B, K, R]``,
``image [B, K, 3, H, W]`` - and ``image_id`` int64 ``[B, K]`` (each view's image).
"""

from __future__ import annotations

import numpy as np
import torch

from cotrain.config import ConfigError, TaskConfig

from .arrays import CANDIDATE_KEYS, CANDIDATE_STORE, Split, index_key
from .errors import DataError

MINING = ("fixed", "per_epoch")
_HARD, _RANDOM = 0, 1  # the stream tag of the seed: per-row hard draws, per-batch random draws


def _rng(seed: int, epoch: int, tag: int, key: int) -> np.random.Generator:
    return np.random.default_rng((int(seed) % 2**63, int(epoch), tag, int(key)))


class NegativeSampler:
    """``take(split, rows, seed=, epoch=, batch=) -> batch`` with K = 1 + ``negatives`` +
    ``random_negatives`` views per row (module docstring); ``draw`` gives the chosen store rows and
    image ids ``[B, K]`` alone."""

    def __init__(self, negatives: int, mining: str = "per_epoch", random_negatives: int = 0) -> None:
        if mining not in MINING:
            raise ConfigError(f"unknown retrieval mining {mining!r}; use {' or '.join(MINING)}")
        if negatives < 1 or random_negatives < 0:
            raise ConfigError(f"a retrieval multiple choice needs negatives >= 1 and random_negatives >= 0, got "
                              f"{negatives} and {random_negatives}")
        self.negatives, self.mining, self.random_negatives = int(negatives), mining, int(random_negatives)

    @property
    def views(self) -> int:
        """K: the caption's image, its hard negatives and its random ones."""
        return 1 + self.negatives + self.random_negatives

    def hard_columns(self, candidates: np.ndarray, rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """Columns ``[B, negatives]`` of ``candidates`` (store rows ``[B, C]``, -1 = none) drawn for
        ``rows`` (their split row numbers) in ``epoch``; -1 where a row has too few usable ones."""
        out = np.full((len(rows), self.negatives), -1, dtype=np.int64)
        for b, row in enumerate(rows):
            usable = np.flatnonzero(candidates[b] >= 0)
            if self.mining == "per_epoch" and len(usable) > self.negatives:
                usable = _rng(seed, epoch, _HARD, row).choice(usable, self.negatives, replace=False)
            usable = usable[: self.negatives]
            out[b, : len(usable)] = usable
        return out

    def draw(self, split: Split, rows: np.ndarray, *, seed: int, epoch: int, batch: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """``(store rows, image ids)``, both int64 ``[B, K]``, of the views of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        own = np.asarray(split.arrays[index_key(CANDIDATE_STORE)])[rows]
        own_id = np.asarray(split.arrays["image_id"])[rows]
        cand, cand_id = (np.asarray(split.arrays[k])[rows] for k in CANDIDATE_KEYS)
        if own.ndim != 1 or own_id.ndim != 1:
            raise DataError(f"a retrieval train split with hard candidates needs visual_index and image_id [N] "
                            f"(one image per caption), got {own.shape} and {own_id.shape}")
        b_size, k = len(rows), self.views
        index, ids = np.empty((b_size, k), np.int64), np.empty((b_size, k), np.int64)
        index[:, 0], ids[:, 0] = own, own_id
        cols = self.hard_columns(cand, rows, seed, epoch)
        rng = _rng(seed, epoch, _RANDOM, batch)
        images, first = np.unique(own_id, return_index=True)  # the batch's distinct images, a row showing each
        for b in range(b_size):
            got = cols[b][cols[b] >= 0]
            n_hard = len(got)
            index[b, 1: 1 + n_hard], ids[b, 1: 1 + n_hard] = cand[b, got], cand_id[b, got]
            need = k - 1 - n_hard
            if not need:
                continue
            others = first[images != own_id[b]]
            if len(others):
                pick = rng.choice(others, need, replace=len(others) < need)
                index[b, 1 + n_hard:], ids[b, 1 + n_hard:] = own[pick], own_id[pick]
                continue
            usable = np.flatnonzero(cand[b] >= 0)
            if not len(usable):
                raise DataError(f"train row {int(rows[b])} has no negative image: no usable hard candidate and no "
                                f"other image in its batch of {b_size}")
            pick = rng.choice(usable, need, replace=len(usable) < need)
            index[b, 1 + n_hard:], ids[b, 1 + n_hard:] = cand[b, pick], cand_id[b, pick]
        return index, ids

    def take(self, split: Split, rows: np.ndarray, *, seed: int, epoch: int, batch: int) -> dict[str, torch.Tensor]:
        """The batch of ``rows`` with its K views gathered (module docstring)."""
        index, ids = self.draw(split, rows, seed=seed, epoch=epoch, batch=batch)
        out = split.take(rows, views={CANDIDATE_STORE: index})
        out["image_id"] = torch.from_numpy(ids)
        return out


def view_sampler(split: Split, task: TaskConfig) -> NegativeSampler | None:
    """The view sampler of ``task``'s training split: a :class:`NegativeSampler` from
    ``tasks[].retrieval`` when the split keeps hard candidates, else None (plain batches)."""
    if CANDIDATE_KEYS[0] not in split.arrays:
        return None
    r = task.retrieval
    have = np.shape(split.arrays[CANDIDATE_KEYS[0]])[1]
    if have < r.negatives:
        raise ConfigError(f"tasks[{task.name}].retrieval.negatives is {r.negatives} but its train data keeps {have} "
                          f"hard candidates per caption; lower negatives or regenerate the data with candidates >= "
                          f"{r.negatives}")
    return NegativeSampler(r.negatives, r.mining, r.random_negatives)


__all__ = ["MINING", "NegativeSampler", "view_sampler"]
