"""Images of a V&L dataset looked up by image id in a folder (COCO, Flickr30k, VG, GQA, NLVR2).

Without ``pattern`` the folder is scanned once, recursively (on first use), for png / jpg / jpeg /
bmp / gif / webp files; each file answers to its file name (``COCO_train2014_000000123456.jpg``),
its stem, and the key its stem stands for: COCO-style ``COCO_train2014_000000123456`` and
``000000123456`` → ``123456``, ``<id>`` → ``id`` (``n161313``, ``train-10171-0-img0``). A key two
files claim (``train2014/...123.jpg`` and ``val2014/...123.jpg``) is an error when looked up.

With ``pattern`` (a ``str.format`` template such as ``"COCO_train2014_{:012d}.jpg"`` or
``"{}.png"``, relative to the folder) nothing is scanned: the key is formatted into a path.

**By the record's own file name.** A record that names its file (Karpathy ``filepath`` +
``filename``, COCO ``images[].file_name``, a Conceptual Captions row) binds its image key to that
name (:meth:`ImageFolderStore.bind`): the key then means ``<folder>/<file name>``, else
``<folder>/<base name>``, else the one file of that base name anywhere under the folder - never a
file that merely ends in the same digits (``emoji_0203c_0.jpg`` is not image 0). Keys without a
bound name keep the lookup above.

:meth:`ImageFolderStore.get` returns uint8 ``[3, S, S]`` RGB (transparency over black, EXIF
rotation applied, resized - not cropped - with bicubic filtering) and the original ``(width,
height)`` after EXIF rotation. A missing image raises
:class:`~cotrain.data.formats.vl.records.MissingImageError` (a ``KeyError`` and a ``DataError``);
an unreadable one DataError naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cotrain.data.errors import DataError
from cotrain.data.media import IMAGE_EXTENSIONS, load_image_with_size
from cotrain.data.formats.vl.records import ImageKey, MissingImageError, image_key_from_stem, normalize_image_key

_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_AMBIGUOUS = object()


class ImageFolderStore:
    """Images by id from ``folder``, resized to ``image_size`` x ``image_size``."""

    def __init__(self, folder: str | os.PathLike, image_size: int, pattern: str | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise DataError("image folder not found" if not self.folder.exists() else "expected a folder", self.folder)
        if image_size is None or image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size!r}")
        self.image_size = int(image_size)
        self.pattern = pattern
        self._files: dict[ImageKey, Path | object] | None = None
        self._claims: dict[ImageKey, list[Path]] = {}
        self._bound: dict[ImageKey, tuple[str, Path | None, list[str]]] = {}  # key -> (name, file, tried)

    def __repr__(self) -> str:
        return f"ImageFolderStore({str(self.folder)!r}, image_size={self.image_size}, pattern={self.pattern!r})"

    # ------------------------------------------------------------------------------- lookup
    def _index(self) -> dict[ImageKey, Path | object]:
        if self._files is None:
            files: dict[ImageKey, Path | object] = {}
            for dirpath, dirnames, filenames in os.walk(self.folder, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
                for fn in sorted(filenames):
                    stem, ext = os.path.splitext(fn)
                    if fn.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS:
                        continue
                    path = Path(dirpath) / fn
                    for key in {fn, stem, image_key_from_stem(stem)}:
                        if key in files and files[key] != path:
                            self._claims.setdefault(key, [files[key]] if files[key] is not _AMBIGUOUS else [])
                            self._claims[key].append(path)
                            files[key] = _AMBIGUOUS
                        elif key not in files:
                            files[key] = path
            self._files = files
        return self._files

    def bind(self, key: object, file_name: str) -> Path | None:
        """From now on look image ``key`` up by its file name ``file_name`` (relative to the folder):
        ``<folder>/<file_name>``, else ``<folder>/<base name>``, else the one file of that base name
        anywhere under the folder. Returns the file, or None when there is none (the key is then
        missing, and :meth:`path` names where it was looked for). DataError when the key is bound
        to another name already, or when several files elsewhere share the base name."""
        k = normalize_image_key(key)
        name = str(file_name).replace("\\", "/").lstrip("/")
        if k in self._bound:
            if self._bound[k][0] != name:
                raise DataError(f"image {key!r} is named by two file names: {self._bound[k][0]!r} and {name!r}",
                                self.folder)
            return self._bound[k][1]
        base = name.rsplit("/", 1)[-1]
        tried = list(dict.fromkeys([name, base]))
        hit = next((self.folder / t for t in tried if (self.folder / t).is_file()), None)
        if hit is None and base:
            found = self._index().get(base)
            if found is _AMBIGUOUS:
                shown = ", ".join(str(p.relative_to(self.folder)) for p in self._claims.get(base, [])[:4])
                raise DataError(f"image {key!r}: no file {' or '.join(tried)}, and several files elsewhere are "
                                f"named {base!r} ({shown})", self.folder)
            hit = found if isinstance(found, Path) else None
            tried.append(f"any file named {base!r} under the folder")
        self._bound[k] = (name, hit, tried)
        return hit

    def tried(self, key: object) -> str | None:
        """Where a bound key was looked for (``"tried a/b.jpg, b.jpg, ..."``), None for other keys."""
        bound = self._bound.get(normalize_image_key(key))
        return None if bound is None else "tried " + ", ".join(bound[2])

    def _find(self, key: object) -> Path | None:
        bound = self._bound.get(normalize_image_key(key))
        if bound is not None:
            return bound[1]
        if self.pattern is not None:
            k = normalize_image_key(key)
            try:
                path = self.folder / self.pattern.format(k)
            except (ValueError, TypeError, IndexError, KeyError) as err:
                raise DataError(f"image {key!r}: cannot format pattern {self.pattern!r}: {err}", self.folder) from err
            return path if path.is_file() else None
        files = self._index()
        hit = files.get(key) if isinstance(key, str) else None  # an explicit file name or stem
        if hit is None:
            hit = files.get(normalize_image_key(key))
        if hit is _AMBIGUOUS:
            claims = self._claims.get(key, self._claims.get(normalize_image_key(key), []))
            shown = ", ".join(str(p.relative_to(self.folder)) for p in claims[:4])
            raise DataError(f"image {key!r} is ambiguous: several files match ({shown})", self.folder)
        return hit

    def path(self, key: ImageKey) -> Path:
        """The file of image ``key``; MissingImageError when there is none."""
        path = self._find(key)
        if path is None:
            how = self.tried(key) or (f"no file {self.pattern.format(normalize_image_key(key))}" if self.pattern
                                      else "no matching file")
            raise MissingImageError(f"image {key!r} not found ({how})", self.folder)
        return path

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def keys(self) -> list[ImageKey]:
        """Image keys of a scanned folder (file names and stems excluded); not with ``pattern``."""
        if self.pattern is not None:
            raise TypeError("an ImageFolderStore with a pattern cannot list its keys")
        return [k for k, p in self._index().items() if p is not _AMBIGUOUS and k == image_key_from_stem(p.stem)]

    # ------------------------------------------------------------------------------- decoding
    def size(self, key: ImageKey) -> tuple[int, int]:
        """Original ``(width, height)`` after EXIF rotation, from the file header only."""
        from PIL import Image

        path = self.path(key)
        try:
            with Image.open(path) as im:
                w, h = im.size
                rotated = im.getexif().get(0x0112) in _ROTATED
        except Exception as err:  # corrupt / unsupported file: name it
            raise DataError(f"image {key!r}: cannot read image file: {type(err).__name__}: {err}", path) from err
        return (h, w) if rotated else (w, h)

    def get(self, key: ImageKey) -> tuple[np.ndarray, tuple[int, int]]:
        """``(pixels uint8 [3, S, S], (width, height))`` of image ``key`` (decoded by
        :func:`cotrain.data.media.load_image_with_size`, as inference decodes a picture)."""
        path = self.path(key)
        try:
            pixels, size = load_image_with_size(path, self.image_size)
        except Exception as err:  # corrupt / unsupported file: name it, never skip it
            raise DataError(f"image {key!r}: cannot read image file: {type(err).__name__}: {err}", path) from err
        return np.ascontiguousarray(pixels), (int(size[0]), int(size[1]))
