"""In-memory task data and a deterministic, resumable batch iterator.

Every source (the procedural world, an image/audio/video folder, a text TSV) produces a
:class:`TaskData`: three :class:`Split` objects holding NumPy arrays with one row per example.

Array keys and layouts (N = examples):

- ``image``: uint8 ``[N, 3, H, W]``
- ``video``: uint8 ``[N, T, 3, H, W]``
- ``audio``: float32 ``[N, S]`` mono waveform at ``TaskData.sample_rate``
- ``text``: int64 ``[N, L]`` token ids, 0 = padding
- ``label``: int64 ``[N]`` (single label) or float32 ``[N, C]`` (multi-label targets in [0, 1]);
  optional (an unlabeled split has none: ``len`` comes from any row array)
- variable-length rows (a detection image's boxes, ...): a :class:`~cotrain.data.ragged.Ragged`
  ``values [M, ...]`` + ``offsets [N + 1]``; a batch holds a list of B tensors ``[n_i, ...]``

Per-image visual arrays of vision-and-language splits (``regions``, ``boxes``, ``region_mask``,
``image``) live once per image in a :class:`~cotrain.data.stores.VisualStore` (in memory or
memory-mapped), referenced by the row array ``visual_index`` int64 ``[N]`` / ``[N, K]``; batches
gather them, so they look as if every row carried its own copy (``docs/vl-contract.md``). A
retrieval train split also references that store through ``candidate_index`` int64 ``[N, C]`` (each
caption's hard candidate images, -1 where the clean split removed one) with their ``candidate_id``;
both stay out of batches: a view sampler (:mod:`cotrain.data.negatives`) draws the negatives from them.

The :class:`BatchIterator` draws batches from a split in a seeded permutation per epoch; its whole
state is ``(epoch, position)``, so it resumes exactly without storing the permutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from .ragged import Ragged
from .stores import VisualStore

INPUT_KEYS = ("image", "video", "audio", "text")
# input kind -> the array that gives it (cotrain.encoders reads these; a V&L source's text is text_raw
# until the tokenizer turns it into text)
INPUT_ARRAYS = {"image": ("image",), "video": ("video",), "audio": ("audio",), "text": ("text", "text_raw"),
                "regions": ("regions",)}
# retrieval train rows: hard candidates (store rows of CANDIDATE_STORE, -1 = none) and their image ids
CANDIDATE_KEYS = ("candidate_index", "candidate_id")
CANDIDATE_STORE = "visual"


@dataclass(repr=False)
class Split:
    """One split of one task: per-row arrays with a shared first dimension N, plus optional stores.

    ``arrays``: ``{key: array [N, ...]}`` (or :class:`~cotrain.data.ragged.Ragged` for
    variable-length rows). ``label`` is optional (an unlabeled split: pre-training, prediction).

    ``stores``: ``{name: VisualStore}`` of per-image arrays kept once (see
    :mod:`cotrain.data.stores`); each is referenced by the row array ``arrays[f"{name}_index"]``
    int64 ``[N]`` or ``[N, K]`` (K views). :meth:`take` gathers the store's arrays through it, so a
    batch holds ``regions [B, (K,) R, F]`` etc. exactly as if every row carried its own copy; the
    index arrays themselves stay out of batches. Read a column (a row array or a store array) with
    :meth:`column`, never through ``arrays`` (a store's keys are not there).
    """

    arrays: dict[str, np.ndarray | Ragged]
    stores: dict[str, VisualStore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.arrays:
            raise ValueError("a split needs at least one per-row array")
        sizes = {k: len(v) for k, v in self.arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"arrays of one split differ in length: {sizes}")
        seen: dict[str, str] = {}
        for name, store in self.stores.items():
            key = index_key(name)
            if key not in self.arrays:
                raise ValueError(f"store {name!r} needs its index array {key!r} (int64 [N] or [N, K]) in the split")
            store.check_index(self.arrays[key], f"split array {key!r}")
            for k in store.keys():
                if k in self.arrays or k in seen:
                    other = f"store {seen[k]!r}" if k in seen else "a row array"
                    raise ValueError(f"store {name!r} holds {k!r}, which {other} of the split holds too")
                seen[k] = name
        self._check_candidates()

    def _check_candidates(self) -> None:
        """``candidate_index`` / ``candidate_id`` come together, int ``[N, C]``, the index into the
        store ``visual`` (-1: no candidate)."""
        index, ids = (self.arrays.get(k) for k in CANDIDATE_KEYS)
        if index is None and ids is None:
            return
        if index is None or ids is None or np.shape(index) != np.shape(ids) or np.ndim(index) != 2:
            raise ValueError(f"a split's hard candidates need {' and '.join(CANDIDATE_KEYS)}, both int [N, C]; got "
                             f"{[(k, np.shape(self.arrays[k])) for k in CANDIDATE_KEYS if k in self.arrays]}")
        store = self.stores.get(CANDIDATE_STORE)
        if store is None:
            raise ValueError(f"candidate_index points into the store {CANDIDATE_STORE!r}, which the split lacks")
        store.check_index(np.where(index < 0, 0, index) if np.size(index) else index, "split array 'candidate_index'")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __repr__(self) -> str:
        cols = ", ".join(f"{k} {getattr(v, 'dtype', '?')} {list(getattr(v, 'shape', [len(v)]))}"
                         for k, v in self.arrays.items())
        stores = "".join(f"; {name}: {store!r}" for name, store in self.stores.items())
        return f"Split({len(self)} rows: {cols}{stores})"

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(k for k in INPUT_KEYS if k in self)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is a row array or an array of one of the stores."""
        return key in self.arrays or any(key in s for s in self.stores.values())

    def keys(self) -> list[str]:
        """Row arrays, then the stores' arrays (what :meth:`column` reads)."""
        return list(self.arrays) + [k for s in self.stores.values() for k in s.keys()]

    def _store_of(self, key: str) -> str | None:
        return next((name for name, s in self.stores.items() if key in s), None)

    def column(self, key: str, rows=None) -> np.ndarray | Ragged:
        """The array ``key`` for ``rows`` (int array, bool mask, slice; None: all rows): a row array
        as it is, or a store's array gathered through its index (``[n, (K,) ...]``)."""
        sel = slice(None) if rows is None else rows
        if key in self.arrays:
            return self.arrays[key][sel]
        name = self._store_of(key)
        if name is None:
            raise KeyError(f"{key!r} is neither an array nor a store array of the split; it has {self.keys()}")
        return self.stores[name].take(self.arrays[index_key(name)][sel], keys=[key])[key]

    def visual(self, rows=None) -> dict[str, np.ndarray]:
        """Every store array for ``rows`` (as :meth:`column`): ``{"regions": [n, (K,) R, F], ...}``."""
        sel = slice(None) if rows is None else rows
        out: dict[str, np.ndarray] = {}
        for name, store in self.stores.items():
            out.update(store.take(self.arrays[index_key(name)][sel]))
        return out

    def columns(self, rows=None) -> dict[str, np.ndarray | Ragged]:
        """Every column for ``rows``: the row arrays (store indexes left out) and the stores'
        arrays gathered - the layout of a split without stores (tests, small splits)."""
        sel = slice(None) if rows is None else rows
        index_keys = {index_key(n) for n in self.stores}
        out = {k: v[sel] for k, v in self.arrays.items() if k not in index_keys}
        out.update(self.visual(rows))
        return out

    def take(self, index: np.ndarray, views: dict[str, np.ndarray] | None = None
             ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Rows ``index`` as a batch of tensors (``torch.from_numpy`` on the gathered rows): every
        row array, a :class:`Ragged` one as a list of B tensors ``[n_i, ...]``, and every store
        array gathered through its index; string arrays (``text_raw``), store indexes and hard
        candidates stay out. ``views``: ``{store: rows int [B, K]}`` gathered instead of the rows'
        own index (a view sampler's choice, e.g. a caption's image and its negatives)."""
        index_keys = {index_key(n) for n in self.stores} | set(CANDIDATE_KEYS)
        batch: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        for k, v in self.arrays.items():
            if k in index_keys:
                continue
            if isinstance(v, Ragged):
                batch[k] = [torch.from_numpy(np.ascontiguousarray(r)) for r in v.rows(index)]
            elif v.dtype.kind not in "USO":
                batch[k] = torch.from_numpy(np.ascontiguousarray(v[index]))
        unknown = sorted(set(views or {}) - set(self.stores))
        if unknown:
            raise KeyError(f"views name stores {unknown}; the split has {sorted(self.stores)}")
        for name, store in self.stores.items():
            rows = views[name] if views and name in views else self.arrays[index_key(name)][index]
            for k, v in store.take(rows).items():
                batch[k] = torch.from_numpy(np.ascontiguousarray(v))
        return batch

    def subset(self, index: np.ndarray) -> "Split":
        """The rows ``index`` (int array or bool mask); the stores are shared, not copied."""
        return Split({k: v[index] for k, v in self.arrays.items()}, dict(self.stores))


def index_key(store: str) -> str:
    """The row array that references store ``store``: ``"<store>_index"``."""
    return f"{store}_index"


def batch_to(batch: dict, device) -> dict:
    """``batch`` on ``device``: tensors moved, lists of tensors (ragged arrays) moved element-wise."""
    return {k: [t.to(device, non_blocking=True) for t in v] if isinstance(v, list) else v.to(device, non_blocking=True)
            for k, v in batch.items()}


def split_inputs(split: Split) -> tuple[str, ...]:
    """The input kinds a split's arrays (or stores) give."""
    return tuple(kind for kind, keys in INPUT_ARRAYS.items() if any(k in split for k in keys))


@dataclass
class TaskData:
    """All splits of one task plus what a head and an encoder need to know about it."""

    name: str
    class_names: list[str]
    train: Split
    val: Split
    test: Split
    multilabel: bool = False
    sample_rate: int | None = None  # audio only
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split_name in ("train", "val", "test"):
            if not split_inputs(getattr(self, split_name)):
                raise ValueError(f"task {self.name!r}: {split_name} split has no input array "
                                 f"({', '.join(k for keys in INPUT_ARRAYS.values() for k in keys)})")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input kinds the data gives (in every split), e.g. ``("audio",)`` or, for the world's
        V&L tasks, ``("image", "text", "regions")``; a task reads some of them (``tasks[].inputs``)."""
        found = [split_inputs(getattr(self, s)) for s in ("train", "val", "test")]
        return tuple(k for k in found[0] if all(k in f for f in found[1:]))

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

    ``views``: an object whose ``take(split, rows, seed=, epoch=, batch=)`` builds the batch of
    ``rows`` instead of ``split.take(rows)`` (the retrieval view sampler,
    :class:`cotrain.data.negatives.NegativeSampler`: a caption's image and its negatives drawn for
    this epoch and batch); what it draws is a function of the iterator state, so it resumes alike.
    """

    def __init__(self, split: Split, batch_size: int, seed: int, views=None) -> None:
        if len(split) == 0:
            raise ValueError("cannot iterate over an empty split")
        self.split = split
        self.batch_size = min(batch_size, len(split))
        self.seed = seed
        self.views = views
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
        rows = np.sort(self.next_index())
        if self.views is None:
            return self.split.take(rows)
        return self.views.take(self.split, rows, seed=self.seed, epoch=self.epoch,
                               batch=self.position // self.batch_size - 1)

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
