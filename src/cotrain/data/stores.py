"""Per-image visual arrays stored once, in memory or memory-mapped, referenced by index.

A :class:`VisualStore` holds arrays with one row per stored image (M rows; the shapes are those of
``docs/vl-contract.md`` without the example axis):

- ``regions`` float16 ``[M, R, F]`` region features (float32 sources are stored as float16, see below),
- ``boxes`` float32 ``[M, R, 4]`` normalised ``x0, y0, x1, y1``, ``region_mask`` bool ``[M, R]``,
- ``image`` uint8 ``[M, 3, S, S]`` pixels,

and a split's rows point at them with an int64 index ``[N]`` (or ``[N, K]`` for K views), so the
ten questions about one image share its one stored copy (VQA v2: 123k stored images instead of
443k per-question copies). :meth:`VisualStore.take` gathers rows through such an index: ``index
[...]`` → ``{key: array [..., *row shape]}``.

**Storage.** In memory (small data, tests), or a folder holding one ``<key>.npy`` per array and
``store.json`` (row count, dtypes and shapes, written last) opened with ``np.load(mmap_mode="r")``:
only the rows a batch touches are read from disk. :class:`StoreWriter` appends rows one image at a
time straight to the ``.npy`` files (ordinary sequential writes behind a header for the known row
count), so assembling a store never holds more than one image's arrays in memory.

**Precision.** The writer stores float32 arrays named in ``half`` (default: ``regions``) as
float16: half the disk, page cache and host→device bytes. Region features of bottom-up attention
are non-negative activations of at most a few hundred; float16 keeps 11 significant bits (relative
error ≤ 2**-11 ≈ 4.9e-4) and the region encoder casts them to its own dtype
(``RegionEncoder.forward``: ``features.to(self.feat_proj.weight.dtype)``). A value beyond float16's
range (65504) is an error naming the key and row, never a silent ``inf``. Boxes, masks and pixels
keep their dtype.

**Memory of a mapped store.** Pages a process reads from a mapping count in its RSS (as RssFile)
until they are unmapped, even though the kernel can drop them at will. So that an epoch over a
100 GB store does not show up as 100 GB of RSS, :meth:`VisualStore.take` releases the mapped pages
(``madvise(MADV_DONTNEED)``: the mapping stays, the page cache keeps the data, the next read is a
minor fault) whenever more than ``resident_limit`` bytes (default 256 MiB) were gathered since the
last release; the file-backed RSS of a store then stays below about that limit.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from .errors import DataError

STORE_FORMAT = 1
META_FILE = "store.json"
RESIDENT_LIMIT = 256 << 20  # bytes gathered from mapped arrays between two releases of their pages
HALF_KEYS = ("regions",)
_F16_MAX = float(np.finfo(np.float16).max)


class VisualStore:
    """Arrays with a shared first dimension M (one row per stored image), in memory or memory-mapped.

    ``arrays``: ``{key: array [M, ...]}``; ``folder``: where a mapped store lives (None: in memory);
    ``notes``: JSON-able facts its builder recorded (saved with it).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], folder: str | os.PathLike | None = None, *,
                 resident_limit: int = RESIDENT_LIMIT, notes: dict | None = None) -> None:
        if not arrays:
            raise ValueError("a VisualStore needs at least one array")
        sizes = {k: len(v) for k, v in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"arrays of one store differ in their number of rows: {sizes}")
        self.arrays = dict(arrays)
        self.folder = None if folder is None else Path(folder)
        self.resident_limit = int(resident_limit)
        self.notes = dict(notes or {})  # what the builder recorded (JSON), kept in store.json
        self._maps = [m for m in (getattr(a, "_mmap", None) for a in self.arrays.values()) if m is not None]
        self._gathered = 0

    # ------------------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __contains__(self, key: object) -> bool:
        return key in self.arrays

    def keys(self) -> list[str]:
        return list(self.arrays)

    @property
    def mapped(self) -> bool:
        """Whether the arrays are memory-mapped files (rather than in memory)."""
        return bool(self._maps)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())

    def __repr__(self) -> str:
        where = f"folder {str(self.folder)!r}" if self.folder is not None else "in memory"
        shapes = ", ".join(f"{k} {a.dtype} {list(a.shape)}" for k, a in self.arrays.items())
        return f"VisualStore({len(self)} rows, {where}: {shapes})"

    def __getstate__(self) -> dict:
        """Pickled (worker processes, deepcopy): a mapped store as its folder, reopened mapped on
        the other side (the pages are shared through the page cache); an in-memory one with its arrays."""
        state = {"resident_limit": self.resident_limit, "notes": self.notes, "folder": self.folder}
        return {**state, "arrays": None} if self.mapped else {**state, "arrays": self.arrays}

    def __setstate__(self, state: dict) -> None:
        if state["arrays"] is None:
            state = {**state, "arrays": VisualStore.open(state["folder"]).arrays}
        self.__init__(state["arrays"], state["folder"], resident_limit=state["resident_limit"], notes=state["notes"])

    # ------------------------------------------------------------------------------ reading
    def check_index(self, index: np.ndarray, what: str = "index") -> np.ndarray:
        """``index`` as int64, or IndexError / TypeError naming ``what`` when it is not an integer
        array with every value in ``[0, len(self))``."""
        index = np.asarray(index)
        if index.dtype.kind not in "iu":
            raise TypeError(f"{what} must be an integer array into {self!r}, got dtype {index.dtype}")
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            bad = index[(index < 0) | (index >= len(self))].reshape(-1)[:3].tolist()
            raise IndexError(f"{what} holds {bad}, outside [0, {len(self)}) of {self!r}")
        return index.astype(np.int64, copy=False)

    def take(self, index, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``{key: array [*index.shape, *row shape]}``: the rows ``index`` (int, any shape, e.g.
        ``[B]`` or ``[B, K]``) of every array (or of ``keys``), copied out of the store."""
        index = self.check_index(index)
        flat = index.reshape(-1)
        out = {}
        for key in self.arrays if keys is None else keys:
            if key not in self.arrays:
                raise KeyError(f"{key!r} is not an array of {self!r}")
            a = self.arrays[key]
            rows = np.take(a, flat, axis=0) if len(flat) else np.zeros((0, *a.shape[1:]), a.dtype)
            out[key] = np.asarray(rows).reshape(*index.shape, *a.shape[1:])
        if self._maps:
            self._gathered += sum(int(v.nbytes) for v in out.values())
            if self._gathered > self.resident_limit:
                self.release()
        return out

    def release(self) -> None:
        """Unmap the pages read so far from a mapped store (they stay in the page cache; no-op in memory)."""
        for m in self._maps:
            try:
                m.madvise(mmap.MADV_DONTNEED)
            except (AttributeError, OSError, ValueError):  # no madvise on this platform: the kernel manages
                pass
        self._gathered = 0

    # ------------------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike) -> "VisualStore":
        """Write the store as ``folder/<key>.npy`` + ``store.json`` (written last) and return it
        opened memory-mapped from there."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for key, a in self.arrays.items():
            np.save(folder / f"{key}.npy", np.ascontiguousarray(a), allow_pickle=False)
        _write_meta(folder, {k: (a.dtype, a.shape[1:]) for k, a in self.arrays.items()}, len(self), self.notes)
        return VisualStore.open(folder)

    @classmethod
    def open(cls, folder: str | os.PathLike, *, mmap_mode: str | None = "r",
             resident_limit: int = RESIDENT_LIMIT) -> "VisualStore":
        """The store saved in ``folder``, memory-mapped (``mmap_mode=None``: read into memory).
        DataError naming the file when ``store.json`` or an array is missing or disagrees with it."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise DataError(f"not a visual store: no {META_FILE}", folder) from None
        except (OSError, ValueError) as err:
            raise DataError(f"unreadable store description: {type(err).__name__}: {err}", meta_path) from err
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT or not isinstance(meta.get("arrays"), dict):
            raise DataError(f"store description of format {STORE_FORMAT} expected (keys format, rows, arrays)",
                            meta_path)
        rows, arrays = int(meta["rows"]), {}
        for key, spec in meta["arrays"].items():
            path = folder / f"{key}.npy"
            try:
                a = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataError(f"cannot read store array {key!r}: {type(err).__name__}: {err}", path) from err
            want = (rows, *spec["shape"])
            if a.shape != want or a.dtype != np.dtype(spec["dtype"]):
                raise DataError(f"store array {key!r} is {a.dtype} {list(a.shape)}; {META_FILE} says "
                                f"{spec['dtype']} {list(want)}", path)
            arrays[key] = a
        return cls(arrays, folder, resident_limit=resident_limit, notes=meta.get("notes"))


def _write_meta(folder: Path, specs: Mapping[str, tuple[np.dtype, tuple]], rows: int, notes: dict) -> None:
    meta = {"format": STORE_FORMAT, "rows": int(rows), "notes": notes,
            "arrays": {k: {"dtype": np.dtype(d).str, "shape": [int(x) for x in s]} for k, (d, s) in specs.items()}}
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / META_FILE)


class StoreWriter:
    """Builds a :class:`VisualStore` of exactly ``rows`` rows, appended one at a time.

    ``folder`` None: in memory (arrays preallocated on the first row). Else each key's rows go
    straight to ``folder/<key>.npy`` (header for ``[rows, ...]`` first, then each row's bytes), and
    :meth:`close` writes ``store.json`` and returns the store memory-mapped. The first row fixes
    every key's trailing shape and dtype (float32 arrays named in ``half`` become float16); later
    rows must match it. Use as a context manager or call :meth:`close`; a writer that is closed
    before ``rows`` rows were appended raises, naming both counts.
    """

    def __init__(self, rows: int, folder: str | os.PathLike | None = None, *, half: Iterable[str] = HALF_KEYS) -> None:
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 0:
            raise ValueError(f"rows must be a non-negative integer, got {rows!r}")
        self.rows = int(rows)
        self.folder = None if folder is None else Path(folder)
        self.half = frozenset(half)
        self.count = 0
        self.notes: dict = {}  # JSON-able facts about the rows, kept with the store (VisualStore.notes)
        self._specs: dict[str, tuple[np.dtype, tuple[int, ...]]] | None = None
        self._memory: dict[str, np.ndarray] = {}
        self._files: dict = {}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _dtype(self, key: str, a: np.ndarray) -> np.dtype:
        return np.dtype(np.float16) if key in self.half and a.dtype == np.float32 else a.dtype

    def _start(self, row: Mapping[str, np.ndarray]) -> None:
        self._specs = {k: (self._dtype(k, a), a.shape) for k, a in row.items()}
        for key, (dtype, shape) in self._specs.items():
            if self.folder is None:
                self._memory[key] = np.zeros((self.rows, *shape), dtype=dtype)
                continue
            f = open(self.folder / f"{key}.npy", "wb")
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (self.rows, *shape)}
            np.lib.format.write_array_header_1_0(f, header)
            self._files[key] = f

    def append(self, **row: np.ndarray) -> int:
        """Append one row (``key=array [*row shape]`` for every key) and return its index."""
        row = {k: np.asarray(v) for k, v in row.items()}
        if self._specs is None:
            if not row:
                raise ValueError("a store row needs at least one array")
            self._start(row)
        assert self._specs is not None
        if set(row) != set(self._specs):
            raise ValueError(f"store row {self.count} has arrays {sorted(row)}, "
                             f"the first row had {sorted(self._specs)}")
        if self.count >= self.rows:
            raise ValueError(f"store writer for {self.rows} rows got row {self.count + 1}")
        for key, a in row.items():
            dtype, shape = self._specs[key]
            if a.shape != shape:
                raise ValueError(f"store row {self.count}: {key!r} has shape {list(a.shape)}, the first row "
                                 f"{list(shape)}")
            if dtype == np.float16 and a.dtype != np.float16 and a.size:
                big = np.abs(a[np.isfinite(a)]).max(initial=0.0)
                if big > _F16_MAX:
                    where = self.folder or "in memory"
                    raise DataError(f"store row {self.count}: {key!r} holds {big:g}, beyond float16's range "
                                    f"({_F16_MAX:g}); write it with half=() to keep float32", where)
            if self.folder is None:
                self._memory[key][self.count] = a
            else:
                self._files[key].write(np.ascontiguousarray(a, dtype=dtype).tobytes())
        self.count += 1
        return self.count - 1

    def close(self) -> VisualStore:
        """Finish the store (every row must have been appended) and return it."""
        for f in self._files.values():
            f.close()
        self._files = {}
        if self.count != self.rows:
            raise ValueError(f"store writer closed after {self.count} of its {self.rows} rows")
        if self._specs is None:
            raise ValueError("a store needs at least one row to know its arrays (got none)")
        if self.folder is None:
            return VisualStore(self._memory, notes=self.notes)
        _write_meta(self.folder, self._specs, self.rows, self.notes)
        return VisualStore.open(self.folder)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            for f in self._files.values():
                f.close()
            self._files = {}


@dataclass(frozen=True)
class StoreCache:
    """Where builders keep large stores: ``root/<fingerprint>/`` (reused while the fingerprint of
    what they hold matches); a store under ``min_bytes`` stays in memory instead."""

    root: Path
    min_bytes: int = 64 << 20

    def folder(self, fingerprint: str) -> Path:
        return Path(self.root) / fingerprint


def build_or_open(folder: str | os.PathLike, rows: int, fill: Callable[[StoreWriter], None], *,
                  half: Iterable[str] = HALF_KEYS) -> tuple[VisualStore, bool]:
    """The store cached in ``folder`` (memory-mapped) when it holds one, else built there by
    ``fill(writer)`` (a :class:`StoreWriter` of ``rows`` rows, written to a temporary sibling and
    renamed into place, so an interrupted build leaves nothing that looks finished).
    Returns ``(store, reused)``."""
    folder = Path(folder)
    if (folder / META_FILE).is_file():
        try:
            return VisualStore.open(folder), True
        except DataError:
            shutil.rmtree(folder, ignore_errors=True)  # damaged: rebuild
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with StoreWriter(rows, tmp, half=half) as writer:
            fill(writer)
            writer.close()
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same store first: use theirs
            if not (folder / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return VisualStore.open(folder), False


def stack_store(rows: Mapping[str, np.ndarray], *, half: Iterable[str] = HALF_KEYS) -> VisualStore:
    """An in-memory store from whole arrays ``{key: [M, ...]}`` (float32 arrays named in ``half`` as float16)."""
    out = {}
    for key, a in rows.items():
        a = np.asarray(a)
        if key in set(half) and a.dtype == np.float32:
            if a.size and np.abs(a[np.isfinite(a)]).max(initial=0.0) > _F16_MAX:
                raise DataError(f"{key!r} holds values beyond float16's range ({_F16_MAX:g})")
            a = a.astype(np.float16)
        out[key] = a
    return VisualStore(out)
