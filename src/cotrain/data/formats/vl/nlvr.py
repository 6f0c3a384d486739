"""NLVR2 statements → :class:`~cotrain.data.formats.vl.records.PairRecord`.

The release (``train.json``, ``dev.json``, ``test1.json``: named ``.json`` but JSON lines, one
example per line)::

    {"identifier": "dev-850-0-0", "sentence": "The left image contains ...", "label": "True",
     "left_url": "https://...", "right_url": "https://...", "synset": "...", "writer": "...", ...}

``identifier`` is ``<split>-<set_id>-<pair_id>-<sentence_id>`` (the NLVR2 README). The pair's
two images are named by dropping the last ``-<sentence_id>`` part and adding ``-img0`` /
``-img1``: ``dev-850-0-0`` → ``dev-850-0-img0.png`` and ``dev-850-0-img1.png``. The records'
``image_ids`` are those names without the extension (``"dev-850-0-img0"``; the image file is
:func:`nlvr2_image_file` of it; the train images sit in numbered sub-folders ``train/<n>/``,
which the image loader must search). ``label``: ``"True"`` → 1, ``"False"`` → 0 (case-insensitive;
JSON booleans too). The split is the identifier's prefix (``train``; ``dev`` → val; ``test1`` /
``test2`` → test) unless the caller gives one. Nothing is skipped: a malformed line raises
:class:`~cotrain.data.errors.DataError` naming the file, line and field.
"""

from __future__ import annotations

import os

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import caller_split, get, iter_jsonl, map_split, resolve
from cotrain.data.formats.vl.records import PairRecord, ReadReport

NLVR2_SPLITS = {"train": "train", "dev": "val", "val": "val", "test1": "test", "test2": "test", "test": "test"}
_LABELS = {"true": 1, "false": 0}


def nlvr2_image_ids(identifier: str) -> tuple[str, str]:
    """The two image names (no extension) of an example: ``dev-850-0-0`` →
    ``("dev-850-0-img0", "dev-850-0-img1")``. Raises ValueError for a malformed identifier."""
    parts = identifier.strip().split("-")
    if len(parts) != 4 or not all(part.isdigit() for part in parts[1:]) or not parts[0]:
        raise ValueError(f"identifier {identifier!r} is not <split>-<set_id>-<pair_id>-<sentence_id>")
    stem = "-".join(parts[:3])
    return f"{stem}-img0", f"{stem}-img1"


def nlvr2_image_file(image_id: str) -> str:
    """The released file name of an image id (``dev-850-0-img0`` → ``dev-850-0-img0.png``)."""
    return f"{image_id}.png"


def read_nlvr2(path: str | os.PathLike, *, split: str | None = None) -> tuple[list[PairRecord], ReadReport]:
    """An NLVR2 JSON-lines file → one record per line, in file order.

    ``split``: given to every record; None takes each record's split from its identifier."""
    canonical = caller_split(split, NLVR2_SPLITS)
    p = resolve(path, "NLVR2 JSON-lines file")
    records: list[PairRecord] = []
    for lineno, ex in iter_jsonl(p, "NLVR2 JSON-lines file"):
        where = f"line {lineno}"
        identifier = get(ex, "identifier", p, where, str)
        where = f"line {lineno} (identifier {identifier})"
        try:
            image_ids = nlvr2_image_ids(identifier)
        except ValueError as err:
            raise DataError(f"{where}: field 'identifier': {err}", p) from err
        statement = get(ex, "sentence", p, where, str).strip()
        if not statement:
            raise DataError(f"{where}: field 'sentence' is empty", p)
        raw = get(ex, "label", p, where, (str, bool))
        label = int(raw) if isinstance(raw, bool) else _LABELS.get(raw.strip().lower())
        if label is None:
            raise DataError(f"{where}: unknown label {raw!r} (expected True or False)", p)
        row_split = canonical
        if row_split is None:
            row_split = map_split(identifier.split("-")[0], NLVR2_SPLITS, p, where, "split prefix of the identifier")
        records.append(PairRecord(identifier, image_ids, statement, label, row_split, str(p)))
    return records, ReadReport()
