"""GLUE sentence(-pair) classification in the official GLUE layout (``source.kind: glue``).

``path`` is one task's folder as GLUE distributes it; columns are found **by header name**, never
by position (the files carry parses, ids and genres besides):

| task | files | text columns | label column: values → class names |
| --- | --- | --- | --- |
| mnli | train.tsv, dev_matched.tsv, dev_mismatched.tsv, test_matched.tsv, test_mismatched.tsv | sentence1, sentence2 | gold_label: contradiction, entailment, neutral |
| qnli | train.tsv, dev.tsv, test.tsv | question, sentence | label: entailment, not_entailment |
| qqp | train.tsv, dev.tsv, test.tsv | question1, question2 | is_duplicate: 0, 1 → not_duplicate, duplicate |
| sst2 | train.tsv, dev.tsv, test.tsv | sentence | label: 0, 1 → negative, positive |

Files are UTF-8, tab-separated, unquoted (``csv`` with ``QUOTE_NONE``: a ``"`` is an ordinary
character, as in QQP's and MNLI's sentences). A sentence pair becomes one text ``"a [SEP] b"``
(the tokenizer keeps ``[SEP]`` as one token, as for the world's ``text-nli``).

Splits: train = ``train.tsv``; val = the dev file (MNLI: ``dev_matched.tsv`` or, with
``mnli_dev="mismatched"``, ``dev_mismatched.tsv``); test = carved out of train by
``test_fraction`` (stratified by class, seeded: :mod:`cotrain.data.formats.splits`), since GLUE's
test labels are hidden. The test files are read, without labels, by :func:`read_glue_unlabeled`
(for prediction).

Split arrays: ``text_raw`` str ``[N]`` and ``label`` int64 ``[N]`` (class index); token ids
(``text``) are added by :func:`cotrain.data.sources.tokenize_texts` once the vocabulary exists.
A row whose label is ``-`` (no annotator consensus) is skipped and reported on one line; a row with
another number of columns than the header, a missing column, an unknown label: DataError naming
the file and line.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cotrain.data.arrays import Split, TaskData
from cotrain.data.errors import DataError
from cotrain.data.formats.splits import stratified_split
from cotrain.data.tokenizer import SEP

NO_LABEL = "-"  # a GLUE / SNLI row without a gold label


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task's layout: its files, the columns it reads and its labels."""

    dev: dict[str, str]  # "matched" / "mismatched" (MNLI) or "" → dev file name
    test: dict[str, str]  # as dev, the unlabelled test files
    text_columns: tuple[str, ...]
    label_column: str
    label_values: tuple[str, ...]  # as written in the file, in class order
    class_names: tuple[str, ...]


GLUE_TASKS: dict[str, GlueTask] = {
    "mnli": GlueTask({"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"},
                     {"matched": "test_matched.tsv", "mismatched": "test_mismatched.tsv"},
                     ("sentence1", "sentence2"), "gold_label", ("contradiction", "entailment", "neutral"),
                     ("contradiction", "entailment", "neutral")),
    "qnli": GlueTask({"": "dev.tsv"}, {"": "test.tsv"}, ("question", "sentence"), "label",
                     ("entailment", "not_entailment"), ("entailment", "not_entailment")),
    "qqp": GlueTask({"": "dev.tsv"}, {"": "test.tsv"}, ("question1", "question2"), "is_duplicate",
                    ("0", "1"), ("not_duplicate", "duplicate")),
    "sst2": GlueTask({"": "dev.tsv"}, {"": "test.tsv"}, ("sentence",), "label", ("0", "1"), ("negative", "positive")),
}
MNLI_PARTS = ("matched", "mismatched")


def glue_task(task: str) -> GlueTask:
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[task]


def glue_class_names(task: str) -> list[str]:
    """The class names of a GLUE task (class index = position)."""
    return list(glue_task(task).class_names)


@dataclass
class GlueRows:
    """What one GLUE file gave: texts, labels (class index; None for an unlabelled read), the 1-based
    line of each row, and the lines skipped for having no gold label."""

    texts: list[str]
    labels: list[int] | None
    lines: list[int]
    no_label: list[int]


def _part(task: str, choice: str, what: str) -> str:
    if task != "mnli":
        return ""
    if choice not in MNLI_PARTS:
        raise ValueError(f"MNLI {what} must be matched or mismatched, got {choice!r}")
    return choice


def _open_rows(p: Path):
    if not p.exists():
        raise DataError("GLUE file not found", p)
    if not p.is_file():
        raise DataError("expected a GLUE .tsv file, got a folder", p)
    try:
        return open(p, encoding="utf-8-sig", newline="")
    except OSError as err:
        raise DataError(f"cannot read file: {err}", p) from err


def read_glue_file(path: str | os.PathLike, task: str, *, labelled: bool = True) -> GlueRows:
    """The rows of one GLUE file of ``task``; ``labelled=False`` ignores any label column (test files)."""
    spec = glue_task(task)
    p = Path(path).expanduser()
    wanted = spec.text_columns + ((spec.label_column,) if labelled else ())
    index = {v: i for i, v in enumerate(spec.label_values)}
    texts, labels, lines, no_label = [], [], [], []
    with _open_rows(p) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = None
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                line = reader.line_num
                if header is None:
                    header = [c.strip() for c in row]
                    missing = [c for c in wanted if c not in header]
                    if missing:
                        raise DataError(f"line {line}: header lacks column(s) {missing} of a GLUE {task} file "
                                        f"(header: {header})", p)
                    cols = [header.index(c) for c in wanted]
                    continue
                if len(row) != len(header):
                    raise DataError(f"line {line}: {len(row)} tab-separated columns, but the header has "
                                    f"{len(header)}", p)
                values = [row[i] for i in cols]
                if labelled:
                    label = values[-1].strip()
                    if label == NO_LABEL:
                        no_label.append(line)
                        continue
                    if label not in index:
                        raise DataError(f"line {line}: {spec.label_column} {label!r} is not a {task} label "
                                        f"({', '.join(spec.label_values)})", p)
                    labels.append(index[label])
                    values = values[:-1]
                texts.append(f" {SEP} ".join(v.strip() for v in values))
                lines.append(line)
        except csv.Error as err:
            raise DataError(f"line {reader.line_num}: not a tab-separated row: {err}", p) from err
        except UnicodeDecodeError as err:
            raise DataError(f"not valid UTF-8 text: {err}", p) from err
    if header is None:
        raise DataError("empty GLUE file (no header)", p)
    return GlueRows(texts, labels if labelled else None, lines, no_label)


def _task_folder(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError("GLUE task folder not found" if not folder.exists() else
                        "expected a GLUE task folder (train.tsv, dev.tsv, ...), got a file", folder)
    return folder


def read_glue_unlabeled(path: str | os.PathLike, task: str, *, mnli_test: str = "matched") -> list[str]:
    """The texts of a GLUE test file (labels hidden), in file order, joined as the reader joins pairs.

    ``path`` is the ``.tsv`` file, or the task's folder (then its test file: ``test.tsv``; MNLI
    ``test_matched.tsv`` or, with ``mnli_test="mismatched"``, ``test_mismatched.tsv``). A labelled
    file (train / dev) is read too, its labels ignored."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / glue_task(task).test[_part(task, mnli_test, "mnli_test")]
    return read_glue_file(p, task, labelled=False).texts


def _as_split(texts: list[str], labels) -> Split:
    return Split({"text_raw": np.asarray(texts, dtype=np.str_).reshape(len(texts)),
                  "label": np.asarray(labels, dtype=np.int64).reshape(len(texts))})


def read_glue(
    path: str | os.PathLike,
    task: str,
    *,
    mnli_dev: str = "matched",
    test_fraction: float = 0.1,
    seed: int = 0,
    name: str | None = None,
) -> TaskData:
    """A GLUE task folder → TaskData with ``text_raw`` and ``label`` per split (see the module docstring)."""
    spec = glue_task(task)
    folder = _task_folder(path)
    files = {"train": "train.tsv", "val": spec.dev[_part(task, mnli_dev, "mnli_dev")]}
    read = {s: read_glue_file(folder / f, task) for s, f in files.items()}
    train, val = read["train"], read["val"]
    for s, r in read.items():
        if not r.texts:
            raise DataError(f"no labelled rows in the GLUE {task} {'training' if s == 'train' else 'dev'} file",
                            folder / files[s])
    if not test_fraction > 0:
        raise DataError(f"GLUE test labels are hidden: the test split is carved out of train.tsv, so it needs "
                        f"test_fraction > 0 (got {test_fraction})", folder)
    label = np.asarray(train.labels, dtype=np.int64)
    parts = stratified_split(label, list(spec.class_names), val_fraction=0.0, test_fraction=test_fraction, seed=seed)
    if not len(parts["test"]):
        raise DataError(f"test_fraction {test_fraction} carves no test rows out of the {len(label)} rows of "
                        f"train.tsv (a class needs 2 rows to give one)", folder)
    splits = {s: _as_split([train.texts[i] for i in parts[s]], label[parts[s]]) for s in ("train", "test")}
    splits["val"] = _as_split(val.texts, val.labels)
    skipped = {files[s]: r.no_label for s, r in read.items() if r.no_label}
    who = name or f"glue-{task}"
    for f, lines in skipped.items():
        print(f"[cotrain] {who}: skipped {len(lines)} row(s) of {f} without a gold label ('{NO_LABEL}'), e.g. "
              f"line(s) {', '.join(map(str, lines[:5]))}", file=sys.stderr)
    meta = {
        "source": str(folder), "glue_task": task, "files": {**files, "test": files["train"]},
        "lines": {"train": np.asarray(train.lines, np.int64)[parts["train"]], "val": np.asarray(val.lines, np.int64),
                  "test": np.asarray(train.lines, np.int64)[parts["test"]]},
        "skipped_no_label": skipped,
    }
    return TaskData(name=who, class_names=list(spec.class_names), train=splits["train"], val=splits["val"],
                    test=splits["test"], meta=meta)


__all__ = ["GLUE_TASKS", "GlueRows", "GlueTask", "glue_class_names", "read_glue", "read_glue_file", "read_glue_unlabeled"]
