"""The visual store of one assembled split: each distinct image read once and written once.

:func:`build_visual_store` turns a list of :class:`StoreRow` (distinct images, in first-use order,
plus one row per referring expression whose proposals are its own candidate boxes) into a
:class:`~cotrain.data.stores.VisualStore`:

- from a region store, per row ``regions`` float32 → float16 ``[R, F]``, ``boxes`` float32 ``[R, 4]``,
  ``region_mask`` bool ``[R]``: the image's first ``max_regions`` regions, zero-padded; a
  candidate row holds its candidate boxes and, for each, the features of the image's region of
  highest IoU with it (any region, not only the first ``max_regions``; a candidate overlapping no
  region takes region 0's and is listed in ``store.notes["no_overlap"]``);
- from an image store, per row ``image`` uint8 ``[3, S, S]``.

Without a :class:`~cotrain.data.stores.StoreCache`, or for a store under ``cache.min_bytes`` (the
first row's size times the row count), the store is built in memory. Otherwise it is written row
by row to ``cache.root/<fingerprint>/`` and memory-mapped; the fingerprint hashes the visual
source's files (per image: path, size and mtime of its ``.npz`` / image file; a TSV store: each
TSV file's path, size and mtime), ``max_regions`` or the image size, and the rows in order - so a
later run over the same data reuses the store without reading a feature, and any change to the
files or the rows builds a new one. Visual sources of other types are never cached.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.formats.vl.records import normalize_image_key
from cotrain.data.formats.vl.regions import NpzRegionStore, RegionFeatures, TsvRegionStore
from cotrain.data.inputs import region_example
from cotrain.data.stores import (
    HALF_KEYS, META_FILE, STORE_FORMAT, StoreCache, StoreWriter, VisualStore, build_or_open,
)


class Reader:
    """The visual source with a small LRU cache (records of one image are usually adjacent)."""

    def __init__(self, visual, max_regions: int, cache: int = 256) -> None:
        self.visual = visual
        self.is_image = isinstance(visual, ImageFolderStore)
        if not self.is_image and (max_regions is None or max_regions <= 0):
            raise ValueError(f"max_regions must be positive, got {max_regions!r}")
        self.max_regions = int(max_regions or 0)
        self._cache: OrderedDict = OrderedDict()
        self._size = cache

    def __contains__(self, key) -> bool:
        return key in self.visual

    def get(self, key):
        k = normalize_image_key(key)
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        value = self.visual.get(key)
        self._cache[k] = value
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value

    def size(self, key) -> tuple[int, int]:
        v = self.get(key)
        return v[1] if self.is_image else (v.width, v.height)


class StoreRow(NamedTuple):
    """One row of a split's store: image ``key`` (as the records name it), and for a referring
    expression with its own proposals the candidate boxes (normalised, float32 ``[C, 4]``) and the
    record's name (for the notes)."""

    key: object
    candidates: np.ndarray | None = None
    name: str = ""


def image_rows(keys: np.ndarray) -> tuple[list[StoreRow], np.ndarray]:
    """Distinct images of an object array of keys (any shape, e.g. ``[N]`` or ``[N, K]``) in
    first-use order, and int64 indexes of the same shape into them."""
    rows: list[StoreRow] = []
    where: dict = {}
    index = np.zeros(keys.shape, dtype=np.int64)
    for pos, key in np.ndenumerate(keys):
        k = normalize_image_key(key)
        if k not in where:
            where[k] = len(rows)
            rows.append(StoreRow(key))
        index[pos] = where[k]
    return rows, index


def _region_row(reader: Reader, row: StoreRow, first: list) -> dict[str, np.ndarray]:
    rf: RegionFeatures = reader.get(row.key)
    dim = rf.features.shape[1]
    if not first:
        first.extend([row.key, dim])
    elif dim != first[1]:
        raise DataError(f"image {row.key!r}: feature size {dim} differs from {first[1]} (image {first[0]!r})",
                        repr(reader.visual))
    if row.candidates is None:  # the image's first max_regions proposals: what inference packs too
        return region_example(rf.features, rf.boxes, reader.max_regions)
    from cotrain.data.formats.vl.assemble import box_iou

    iou = box_iou(row.candidates, rf.boxes)
    if (iou.max(axis=1) <= 0).any():
        first.append(row.name)  # noted below as no_overlap
    return region_example(rf.features[iou.argmax(axis=1)], row.candidates, reader.max_regions)


def _stamp(visual, key) -> list:
    """What identifies image ``key``'s data: its file's path, size and mtime (a TSV: the key only,
    the files are stamped once by :func:`_source_stamp`)."""
    if isinstance(visual, (NpzRegionStore, ImageFolderStore)):
        path = visual.path(key)
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    return [repr(normalize_image_key(key))]


def _source_stamp(reader: Reader) -> list | None:
    v = reader.visual
    if isinstance(v, TsvRegionStore):
        return ["tsv", list(v.fieldnames), [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in v.paths],
                reader.max_regions]
    if isinstance(v, NpzRegionStore):
        return ["npz", reader.max_regions]
    if isinstance(v, ImageFolderStore):
        return ["images", v.image_size]
    return None  # an unknown source: not cached


def fingerprint(reader: Reader, rows: list[StoreRow]) -> str | None:
    """The hex digest naming the cached store of ``rows`` (None: the source cannot be cached)."""
    source = _source_stamp(reader)
    if source is None:
        return None
    h = hashlib.sha256(json.dumps([STORE_FORMAT, list(HALF_KEYS), source]).encode())
    for row in rows:
        h.update(json.dumps(_stamp(reader.visual, row.key)).encode())
        if row.candidates is not None:
            h.update(b"candidates" + np.ascontiguousarray(row.candidates, dtype=np.float32).tobytes())
            h.update(row.name.encode())  # named in the notes
        h.update(b"\n")
    return h.hexdigest()[:32]


def _empty(reader: Reader) -> VisualStore:
    if reader.is_image:
        s = reader.visual.image_size
        return VisualStore({"image": np.zeros((0, 3, s, s), np.uint8)})
    r = reader.max_regions
    return VisualStore({"regions": np.zeros((0, r, 0), np.float16), "boxes": np.zeros((0, r, 4), np.float32),
                        "region_mask": np.zeros((0, r), bool)})


def build_visual_store(reader: Reader, rows: list[StoreRow], cache: StoreCache | None = None) -> VisualStore:
    """The store of ``rows`` (see the module docstring), in memory or cached under ``cache``."""
    if not rows:
        return _empty(reader)
    if reader.is_image and any(r.candidates is not None for r in rows):
        raise ValueError("an image store holds pixels only: candidate rows need a region store")
    first: list = []  # [key, F] of the first region row, then names of candidate rows overlapping no region

    def read(row: StoreRow) -> dict[str, np.ndarray]:
        return {"image": reader.get(row.key)[0]} if reader.is_image else _region_row(reader, row, first)

    def fill(writer: StoreWriter, head: dict | None = None) -> None:
        _fill(writer, rows, read, head)
        writer.notes["no_overlap"] = first[2:]

    digest = fingerprint(reader, rows) if cache is not None else None
    if digest is not None and (cache.folder(digest) / META_FILE).is_file():  # built by an earlier run
        return build_or_open(cache.folder(digest), len(rows), fill)[0]
    head = read(rows[0])
    half = set(HALF_KEYS)
    row_bytes = sum(a.nbytes // (2 if k in half and a.dtype == np.float32 else 1) for k, a in head.items())
    if digest is None or row_bytes * len(rows) < cache.min_bytes:
        writer = StoreWriter(len(rows))
        fill(writer, head)
        return writer.close()
    return build_or_open(cache.folder(digest), len(rows), lambda writer: fill(writer, head))[0]


def _fill(writer: StoreWriter, rows: list[StoreRow], read, head: dict | None = None) -> None:
    """Append every row (``head``: the first row, already read)."""
    writer.append(**(head if head is not None else read(rows[0])))
    for row in rows[1:]:
        writer.append(**read(row))
