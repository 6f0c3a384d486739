"""Conceptual Captions TSV → :class:`~cotrain.data.formats.vl.records.CaptionRecord`.

The layout of the released files (``Train_GCC-training.tsv``, ``Validation_GCC-1.1.0-Validation.tsv``):
no header, one row per line, two tab-separated columns::

    a very typical bus station<TAB>http://example.com/photos/station-123.jpg?w=400
    the player warms up<TAB>player_007.jpg

The second column is the image, as released a URL, or the name of a local copy. The image's file
name is the URL's last path component with the query string and fragment stripped
(``station-123.jpg`` above), or the name as written (it may hold sub-folders, ``000/7.jpg``). Each
row becomes one record: ``caption`` the first column stripped, ``file_name`` that name,
``image_id`` the name without its extension (``station-123``; ``000/7``; an all-digit name is an
integer id, ``123.jpg`` → 123, as region files are keyed), so rows naming the same file share an
image; ``split`` the caller's.

Blank lines are skipped. A row that cannot be parsed - not valid UTF-8, not exactly two columns, an
empty caption, an image field naming no file - raises
:class:`~cotrain.data.errors.DataError` naming the file and the (1-based) line. Finding the images
(and skipping, and counting, the rows whose file is missing) is the assembler's part
(:func:`cotrain.data.formats.vl.assemble.assemble_captions`).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path, PurePosixPath
from typing import Iterator
from urllib.parse import urlsplit

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import caller_split, resolve
from cotrain.data.formats.vl.captions import CALLER_SPLITS
from cotrain.data.formats.vl.records import CaptionRecord, ReadReport, normalize_image_key


def image_file_name(field: str) -> str:
    """The file name an image field stands for: a URL's last path component (query and fragment
    stripped), or the field itself; ``""`` when it names no file."""
    field = field.strip()
    parts = urlsplit(field)
    if parts.scheme and parts.netloc:
        return parts.path.rsplit("/", 1)[-1]
    return field.replace("\\", "/").lstrip("/")


def _lines(p: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read file: {err}", p) from err


def read_conceptual_captions(
    path: str | os.PathLike, *, split: str | None = None
) -> tuple[list[CaptionRecord], ReadReport]:
    """Read a Conceptual Captions TSV (optionally ``.gz``); one record per non-blank line, in file
    order. ``split`` (train / val / test and their aliases) is given to every record."""
    canonical = caller_split(split, CALLER_SPLITS)
    p = resolve(path, "Conceptual Captions TSV")
    records: list[CaptionRecord] = []
    for lineno, raw in _lines(p):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"line {lineno}: not valid UTF-8 ({err.reason} at byte {err.start})", p) from err
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataError(f"line {lineno}: expected 2 tab-separated columns (caption, image), got {len(cols)}", p)
        caption, name = cols[0].strip(), image_file_name(cols[1])
        if not caption:
            raise DataError(f"line {lineno}: empty caption", p)
        if not name:
            raise DataError(f"line {lineno}: the image field {cols[1].strip()!r} names no file", p)
        image_id = normalize_image_key(str(PurePosixPath(name).with_suffix("")))
        records.append(CaptionRecord(image_id, caption, canonical, file_name=name, source=str(p)))
    return records, ReadReport()
