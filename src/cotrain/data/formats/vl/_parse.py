"""Small parsing helpers shared by the caption / refexp / NLVR2 / SNLI-VE readers.

Every failure raises :class:`~cotrain.data.errors.DataError` naming the file, and the record
(``where``: "line 7", "image 3 (imgid 12)") and field at fault. JSON and JSON-lines files may be
gzip-compressed (``.gz``), as the GuessWhat?! release is.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.records import Box

_MISSING = object()
_NUMBER = (int, float)


def resolve(path: str | os.PathLike, what: str) -> Path:
    """The path, checked to be an existing file (``what`` names the expected file in the error)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} not found", p)
    if not p.is_file():
        raise DataError(f"expected the {what} file, got a folder", p)
    return p


def _read_text(p: Path) -> str:
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:
                return f.read().decode("utf-8-sig")
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"not valid UTF-8 text: {err}", p) from err
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read file: {err}", p) from err


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parse one JSON document (the whole file)."""
    p = resolve(path, what)
    try:
        return json.loads(_read_text(p))
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}", p) from err


def iter_jsonl(path: str | os.PathLike, what: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file (1-based lines)."""
    p = resolve(path, what)
    for lineno, line in enumerate(_read_text(p).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"line {lineno}: not valid JSON (column {err.colno}): {err.msg}", p) from err
        if not isinstance(obj, dict):
            raise DataError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}", p)
        yield lineno, obj


def get(obj: Mapping, key: str, p: Path, where: str, kind: type | tuple[type, ...] | None = None, default=_MISSING):
    """``obj[key]``, checked: missing (without ``default``) or of the wrong type raises DataError."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: expected an object, got {type(obj).__name__}", p)
    if key not in obj or obj[key] is None:
        if default is not _MISSING:
            return default
        raise DataError(f"{where}: missing field {key!r}", p)
    value = obj[key]
    if kind is not None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        bad_bool = isinstance(value, bool) and bool not in kinds
        if bad_bool or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise DataError(f"{where}: field {key!r} must be {names}, got {value!r:.60}", p)
    return value


def number(obj: Mapping, key: str, p: Path, where: str) -> float:
    """A numeric field as float."""
    return float(get(obj, key, p, where, _NUMBER))


def xywh_to_xyxy(box: object, p: Path, where: str, key: str = "bbox") -> Box:
    """A COCO ``[x, y, w, h]`` box (pixels) as ``(x0, y0, x1, y1)``."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise DataError(f"{where}: field {key!r} must be [x, y, width, height], got {box!r:.60}", p)
    if not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in box):
        raise DataError(f"{where}: field {key!r} must hold 4 numbers, got {box!r:.60}", p)
    x, y, w, h = (float(v) for v in box)
    if w < 0 or h < 0:
        raise DataError(f"{where}: field {key!r} has a negative width or height: {list(box)}", p)
    return (x, y, x + w, y + h)


def map_split(value: object, aliases: Mapping[str, str], p: Path, where: str, key: str = "split") -> str:
    """The canonical split (train / val / test) of a split name, by ``aliases``."""
    mapped = aliases.get(value) if isinstance(value, str) else None
    if mapped is None:
        known = ", ".join(sorted(aliases))
        raise DataError(f"{where}: unknown {key} {value!r} (known: {known})", p)
    return mapped


def split_from_name(p: Path, aliases: Mapping[str, str]) -> str | None:
    """The split a file name states (``snli_ve_dev.jsonl`` → val), or None when it states none
    or more than one."""
    found = {aliases[t] for t in re.split(r"[._\-\s]+", p.name.lower()) if t in aliases}
    return found.pop() if len(found) == 1 else None


def caller_split(split: str | None, aliases: Mapping[str, str]) -> str | None:
    """A split passed by the caller, checked and mapped (None stays None)."""
    if split is None:
        return None
    mapped = aliases.get(split)
    if mapped is None:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(sorted(aliases))}")
    return mapped
