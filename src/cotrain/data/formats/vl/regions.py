"""Pre-extracted region features (bottom-up attention proposals), one set per image.

Two on-disk layouts, both read lazily (an index of the files / rows is built on first use and one
image is decoded per :meth:`get`):

- :class:`NpzRegionStore` - a folder of ``<image id>.npz`` files (``np.savez``; no pickles), one per
  image, holding ``features`` float ``[R, F]``, ``boxes`` float ``[R, 4]`` in pixels ``x0, y0, x1,
  y1`` and the image size as scalars ``image_w`` and ``image_h`` or as ``image_size = [w, h]``. The
  names ``x`` / ``bbox`` (py-bottom-up-attention's extractor) are accepted for features / boxes.
  File stems are read as image keys like image files are: ``123456``, ``000000123456`` and
  ``COCO_val2014_000000123456`` all mean image 123456; other stems (``n161313``) stay strings.
- :class:`TsvRegionStore` - the bottom-up-attention TSV (``generate_tsv.py``): no header, one image
  per line, tab-separated fields ``image_id, image_w, image_h, num_boxes, boxes, features`` where
  ``boxes`` / ``features`` are base64 float32 buffers of shape ``[num_boxes, 4]`` / ``[num_boxes,
  F]``. Other field orders (LXMERT's ``LXMERT_FIELDS``) are given as ``fieldnames``. Several files
  (``.tsv.0`` ... ``.tsv.3``) can form one store. Base64 written as ``b'...'`` (a Python 3 port
  that forgot ``.decode()``) is accepted; the csv field size limit is lifted for the huge rows.

:meth:`get` returns :class:`RegionFeatures` with boxes normalised to [0, 1] by the image width /
height. A missing image raises :class:`~cotrain.data.formats.vl.records.MissingImageError` (a
``KeyError`` and a ``DataError``); a corrupt file or row raises DataError naming the file and image.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.records import ImageKey, MissingImageError, image_key_from_stem, normalize_image_key

BUTD_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")
LXMERT_FIELDS = (
    "img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes", "boxes", "features"
)
_ALIASES = {"img_id": "image_id", "img_w": "image_w", "img_h": "image_h"}


@dataclass
class RegionFeatures:
    """The regions of one image: ``features`` float32 ``[R, F]``, ``boxes`` float32 ``[R, 4]``
    (``x0, y0, x1, y1`` divided by ``width`` / ``height`` and clipped to [0, 1]), image size in px."""

    features: np.ndarray
    boxes: np.ndarray
    width: int
    height: int

    @property
    def num_regions(self) -> int:
        return len(self.features)


def make_regions(features, boxes, width, height, where: str, path: Path | str) -> RegionFeatures:
    """Validate raw arrays (boxes in pixels) and normalise the boxes; errors name ``path`` and ``where``."""
    features = np.asarray(features, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if features.ndim != 2:
        raise DataError(f"{where}: features should be [R, F], got shape {features.shape}", path)
    if boxes.shape != (len(features), 4):
        raise DataError(f"{where}: boxes should be [{len(features)}, 4] (one per feature row), got {boxes.shape}", path)
    try:
        w, h = float(np.asarray(width).item()), float(np.asarray(height).item())
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: image width / height should be scalars, got {width!r}, {height!r}", path) from err
    if not (w > 0 and h > 0 and np.isfinite(w) and np.isfinite(h)):
        raise DataError(f"{where}: image width / height must be positive, got {w} x {h}", path)
    if not (np.isfinite(features).all() and np.isfinite(boxes).all()):
        raise DataError(f"{where}: features or boxes contain NaN / infinite values", path)
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise DataError(f"{where}: boxes must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0", path)
    scale = np.array([w, h, w, h], dtype=np.float32)
    return RegionFeatures(features, np.clip(boxes / scale, 0.0, 1.0).astype(np.float32), int(round(w)), int(round(h)))


class _IndexedStore:
    """What both stores share: an index of image keys built on first use (``_index``)."""

    def _index(self) -> dict:
        raise NotImplementedError

    def keys(self) -> list[ImageKey]:
        return list(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def __contains__(self, key: object) -> bool:
        return normalize_image_key(key) in self._index()


class NpzRegionStore(_IndexedStore):
    """Region features from a folder of ``<image id>.npz`` files (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            what = "region feature folder not found" if not self.folder.exists() else "expected a folder"
            raise DataError(what, self.folder)
        self._files: dict[ImageKey, Path] | None = None

    def __repr__(self) -> str:
        return f"NpzRegionStore({str(self.folder)!r})"

    def _index(self) -> dict[ImageKey, Path]:
        if self._files is None:
            files: dict[ImageKey, Path] = {}
            with os.scandir(self.folder) as entries:
                for e in entries:
                    if e.name.endswith(".npz") and not e.name.startswith(".") and e.is_file():
                        key = image_key_from_stem(e.name[: -len(".npz")])
                        if key in files:
                            clash = f"{files[key].name}, {e.name}"
                            raise DataError(f"two feature files for image {key!r}: {clash}", self.folder)
                        files[key] = Path(e.path)
            self._files = files
        return self._files

    def path(self, key: ImageKey) -> Path:
        """The ``.npz`` file of image ``key``; MissingImageError when there is none."""
        k = normalize_image_key(key)
        path = self._index().get(k)
        if path is None:
            raise MissingImageError(f"no region features for image {key!r} (no {k}.npz)", self.folder)
        return path

    def get(self, key: ImageKey) -> RegionFeatures:
        """Regions of one image: features float32 ``[R, F]``, boxes float32 ``[R, 4]`` normalised."""
        return read_npz_regions(self.path(key), f"image {key!r}")


def read_npz_regions(path: str | os.PathLike, where: str | None = None) -> RegionFeatures:
    """One region file (the layout of :class:`NpzRegionStore`) → :class:`RegionFeatures`;
    ``where`` names the image in errors (default: the file name)."""
    path = Path(path)
    where = where or path.name
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{where}: cannot read the .npz file: {type(err).__name__}: {err}", path) from err
    feats = arrays.get("features", arrays.get("x"))
    boxes = arrays.get("boxes", arrays.get("bbox"))
    if feats is None or boxes is None:
        raise DataError(f"{where}: needs arrays 'features' and 'boxes'; the file has {sorted(arrays)}", path)
    if "image_w" in arrays and "image_h" in arrays:
        w, h = arrays["image_w"], arrays["image_h"]
    elif "image_size" in arrays and np.asarray(arrays["image_size"]).size == 2:
        w, h = np.asarray(arrays["image_size"]).reshape(2)
    else:
        raise DataError(f"{where}: needs scalars 'image_w' and 'image_h' or 'image_size' = [w, h]", path)
    return make_regions(feats, boxes, w, h, where, path)


def _raise_csv_field_limit() -> None:
    """Rows hold megabytes of base64 - lift the csv module's 128 KiB field limit."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # C long is 32 bits on some platforms
            limit //= 2


def _b64_floats(text: str, where: str, name: str, path: Path) -> np.ndarray:
    if text.startswith("b'") and text.endswith("'"):  # written as str(bytes) by a Python 3 port
        text = text[2:-1]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise DataError(f"{where}: field {name!r} is not valid base64: {err}", path) from err
    if len(raw) % 4:
        raise DataError(f"{where}: field {name!r} holds {len(raw)} bytes, not a whole number of float32", path)
    return np.frombuffer(raw, dtype="<f4")


class TsvRegionStore(_IndexedStore):
    """Region features from bottom-up-attention TSV file(s) (see the module docstring). An
    ``image id → (file, byte offset)`` index is built by one pass on first use; :meth:`get` then
    seeks to and decodes one row."""

    def __init__(self, path: str | os.PathLike | Sequence[str | os.PathLike], fieldnames: Sequence[str] = BUTD_FIELDS):
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        self.paths = [Path(p).expanduser() for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise DataError("region feature TSV not found" if not p.exists() else "expected a .tsv file", p)
        names = [_ALIASES.get(n, n) for n in fieldnames]
        missing = [n for n in BUTD_FIELDS if n not in names]
        if missing:
            raise ValueError(f"fieldnames {list(fieldnames)} lack {missing}")
        self.fieldnames = tuple(fieldnames)
        self._col = {n: names.index(n) for n in BUTD_FIELDS}
        self._offsets: dict[ImageKey, tuple[int, int]] | None = None
        _raise_csv_field_limit()

    def __repr__(self) -> str:
        return f"TsvRegionStore({', '.join(repr(str(p)) for p in self.paths)})"

    def _index(self) -> dict[ImageKey, tuple[int, int]]:
        if self._offsets is None:
            first = self._col["image_id"]
            offsets: dict[ImageKey, tuple[int, int]] = {}
            for fi, p in enumerate(self.paths):
                with open(p, "rb") as f:
                    pos = 0
                    for lineno, line in enumerate(f, start=1):
                        if line.strip():
                            cols = line.split(b"\t", first + 1)
                            raw = cols[first].decode("utf-8", "replace").strip().strip('"') if len(cols) > first else ""
                            if not raw:
                                raise DataError(f"line {lineno}: no image id", p)
                            key = normalize_image_key(raw)
                            if key in offsets:
                                other = self.paths[offsets[key][0]]
                                raise DataError(f"line {lineno}: image {key!r} appears twice (also in {other})", p)
                            offsets[key] = (fi, pos)
                        pos += len(line)
            self._offsets = offsets
        return self._offsets

    def get(self, key: ImageKey) -> RegionFeatures:
        """Regions of one image: features float32 ``[R, F]``, boxes float32 ``[R, 4]`` normalised."""
        hit = self._index().get(normalize_image_key(key))
        if hit is None:
            raise MissingImageError(f"no row for image {key!r}", ", ".join(map(str, self.paths)))
        path = self.paths[hit[0]]
        with open(path, "rb") as f:
            f.seek(hit[1])
            line = f.readline()
        where = f"image {key!r}"
        try:
            row = next(csv.reader(io.StringIO(line.decode("utf-8")), delimiter="\t"))
        except (UnicodeDecodeError, csv.Error, StopIteration) as err:
            raise DataError(f"{where}: unreadable row: {err}", path) from err
        if len(row) != len(self.fieldnames):
            expected = f"{len(self.fieldnames)} ({', '.join(self.fieldnames)})"
            raise DataError(f"{where}: {len(row)} fields, expected {expected}", path)
        col = {n: row[i] for n, i in self._col.items()}
        try:
            num, w, h = int(col["num_boxes"]), float(col["image_w"]), float(col["image_h"])
        except ValueError as err:
            raise DataError(f"{where}: num_boxes / image_w / image_h must be numbers: {err}", path) from err
        if num <= 0:
            raise DataError(f"{where}: num_boxes must be positive, got {num}", path)
        boxes = _b64_floats(col["boxes"], where, "boxes", path)
        feats = _b64_floats(col["features"], where, "features", path)
        if boxes.size != num * 4:
            raise DataError(f"{where}: 'boxes' holds {boxes.size} floats, expected num_boxes * 4 = {num * 4}", path)
        if feats.size % num:
            raise DataError(f"{where}: 'features' holds {feats.size} floats, not a multiple of num_boxes = {num}", path)
        return make_regions(feats.reshape(num, -1), boxes.reshape(num, 4), w, h, where, path)
