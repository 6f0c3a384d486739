"""Text classification data in a tab-separated file.

One example per line: ``text<TAB>label`` or ``text<TAB>label<TAB>split`` (split: train / val /
test; ``validation``, ``valid`` and ``dev`` also mean val). An optional first line ``text<TAB>label``
(``<TAB>split``) is a header. Blank lines are skipped. All data lines must have the same number of
columns (2 or 3). Without a split column, or when it names no val / test rows, the missing splits are
carved out of train by ``val_fraction`` / ``test_fraction`` (stratified, seeded).

Class names are the sorted distinct labels of the train rows; a label appearing only in val / test
is an error. Texts become int64 ``[N, max_len]`` ids through the given tokenizer (0 = padding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cotrain.data.arrays import Split, TaskData
from cotrain.data.errors import DataError
from cotrain.data.formats.splits import SPLITS, carve_missing_splits

_SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "dev": "val", "test": "test"}


@dataclass
class TsvRow:
    text: str
    label: str
    split: str | None  # None when the file has no split column
    line: int  # 1-based line number in the file


def read_tsv_rows(path: str | os.PathLike) -> list[TsvRow]:
    """Parse and validate the rows of a text TSV (no tokenisation)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError("text TSV file not found", p)
    if not p.is_file():
        raise DataError("expected a .tsv file, got a folder", p)
    try:
        content = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"not valid UTF-8 text: {err}", p) from err
    except OSError as err:
        raise DataError(f"cannot read file: {err}", p) from err

    rows: list[TsvRow] = []
    ncols: int | None = None
    first = True
    for lineno, raw in enumerate(content.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        if first:
            first = False
            head = [c.strip().lower() for c in cols]
            if head in (["text", "label"], ["text", "label", "split"]):
                ncols = len(head)
                continue
        if ncols is None:
            if len(cols) not in (2, 3):
                raise DataError(
                    f"line {lineno}: expected 2 or 3 tab-separated columns (text, label[, split]), got {len(cols)}", p
                )
            ncols = len(cols)
        if len(cols) != ncols:
            raise DataError(
                f"line {lineno}: expected {ncols} tab-separated columns "
                f"({'text, label, split' if ncols == 3 else 'text, label'}), got {len(cols)}",
                p,
            )
        text, label = cols[0], cols[1].strip()
        if not label:
            raise DataError(f"line {lineno}: empty label", p)
        split = None
        if ncols == 3:
            split = _SPLIT_ALIASES.get(cols[2].strip().lower())
            if split is None:
                raise DataError(f"line {lineno}: split must be train, val or test, got {cols[2].strip()!r}", p)
        rows.append(TsvRow(text, label, split, lineno))
    if not rows:
        raise DataError("no examples (empty file or header only)", p)
    return rows


def _assign(rows: list[TsvRow], p: Path, val_fraction: float, test_fraction: float, seed: int):
    """``(class_names, {split: [row, ...]})`` with missing splits carved from train."""
    given = {s: [r for r in rows if (r.split or "train") == s] for s in SPLITS}
    if not given["train"]:
        raise DataError("no train rows (split column names only val / test)", p)
    class_names = sorted({r.label for r in given["train"]})
    index = {c: i for i, c in enumerate(class_names)}
    for s in ("val", "test"):
        for r in given[s]:
            if r.label not in index:
                raise DataError(f"line {r.line}: label {r.label!r} of a {s} row is absent from the train rows", p)
    labels = np.array([index[r.label] for r in given["train"]], dtype=np.int64)
    out = carve_missing_splits(
        given, labels, class_names, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return class_names, out


def read_tsv_texts(
    path, *, split: str = "train", val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> list[str]:
    """The texts of one split exactly as :func:`read_text_tsv` would split them - for building a
    vocabulary from training texts before the tokenizer exists."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use train, val or test")
    p = Path(path).expanduser()
    _, parts = _assign(read_tsv_rows(p), p, val_fraction, test_fraction, seed)
    return [r.text for r in parts[split]]


def read_text_tsv(
    path,
    *,
    tokenizer,
    max_len: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    name: str | None = None,
) -> TaskData:
    """A text TSV → TaskData with ``text`` int64 ``[N, max_len]`` and ``label`` int64 ``[N]``.

    ``tokenizer`` is anything with ``encode(texts, max_len) -> int64 [N, max_len]`` (a
    :class:`~cotrain.data.tokenizer.WordPieceTokenizer`).
    """
    p = Path(path).expanduser()
    rows = read_tsv_rows(p)
    class_names, parts = _assign(rows, p, val_fraction, test_fraction, seed)
    index = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for s in SPLITS:
        texts = [r.text for r in parts[s]]
        ids = np.asarray(tokenizer.encode(texts, max_len), dtype=np.int64).reshape(len(texts), max_len)
        labels = np.array([index[r.label] for r in parts[s]], dtype=np.int64)
        splits[s] = Split({"text": ids, "label": labels})
    meta = {
        "source": str(p),
        "layout": "split_column" if rows[0].split is not None else "single_file",
        "lines": {s: [r.line for r in parts[s]] for s in SPLITS},
        "max_len": int(max_len),
        "vocab_size": getattr(tokenizer, "vocab_size", None),
    }
    return TaskData(
        name=name or p.stem,
        class_names=class_names,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        meta=meta,
    )
