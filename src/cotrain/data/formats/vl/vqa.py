"""Visual question answering in its real annotation formats → :class:`VQARecord` lists, plus the
answer vocabulary and the answer arrays of ``docs/vl-contract.md`` (normalisation and soft targets
come from :mod:`cotrain.metrics.vqa`: ``normalize_answer``, ``soft_scores``).

Formats read:

- **VQA v2** (:func:`read_vqa_v2`): the official questions JSON
  ``{"questions": [{"question_id", "image_id", "question"}], "data_subtype": "train2014", ...}`` and
  the annotations JSON ``{"annotations": [{"question_id", "image_id", "answers": [{"answer",
  "answer_confidence", "answer_id"}] x 10, "multiple_choice_answer", "answer_type", ...}]}``
  (``answer_type``, "yes/no" | "number" | "other", is kept when present). The annotations file is
  optional (test splits): answers are then empty.
- **GQA** (:func:`read_gqa`): ``{"<question id>": {"imageId", "question", "answer", "fullAnswer",
  ...}}``; one answer per question.
- **Visual Genome QA** (:func:`read_vg_qa`): ``question_answers.json``, a list of images
  ``[{"id" | "image_id", "qas": [{"qa_id", "image_id", "question", "answer"}]}]``; one answer.

Every problem (missing file, bad JSON, a missing or mistyped key, question ids that differ between
the two VQA files) raises :class:`~cotrain.data.errors.DataError` naming the file, the record and
the field. Answers are kept raw in the records and normalised (official VQA rules) only by
:func:`build_answer_vocab` / :func:`encode_answers`.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import get, load_json
from cotrain.data.formats.vl.records import ReadReport, VQARecord
from cotrain.metrics.vqa import normalize_answer, soft_scores  # noqa: F401 - soft_scores re-exported

NUM_ANSWERS = 10  # annotator answers per question in the arrays (VQA v2 has 10; others repeat one)
_normalize = functools.lru_cache(maxsize=1 << 16)(normalize_answer)  # answers repeat a lot


# ----------------------------------------------------------------------------------- helpers
def _split_of(subtype: object) -> str | None:
    text = str(subtype or "").lower()
    for s in ("train", "val", "test"):
        if text.startswith(s):
            return s
    return None


def _ids(ids: Iterable[object], n: int = 5) -> str:
    ids = sorted(ids, key=str)
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(map(str, ids[:n])) + more


# ----------------------------------------------------------------------------------- readers
def read_vqa_v2(
    questions: str | os.PathLike, annotations: str | os.PathLike | None = None, *, split: str | None = None
) -> list[VQARecord]:
    """VQA v2 questions (+ annotations) → records in the questions file's order, 10 raw answers each
    (none without an annotations file). ``split`` defaults to the file's ``data_subtype``
    (``train2014`` → train, ``val2014`` → val, ``test2015`` / ``test-dev2015`` → test)."""
    qp = Path(questions).expanduser()
    qdoc = load_json(qp, "VQA questions file")
    qlist = get(qdoc, "questions", qp, "questions file", list)
    split = split or _split_of(qdoc.get("data_subtype"))
    records: list[VQARecord] = []
    for i, q in enumerate(qlist):
        where = f"question {i}"
        qid = get(q, "question_id", qp, where, int)
        where = f"question {i} (question_id {qid})"
        records.append(
            VQARecord(
                question_id=qid,
                image_id=get(q, "image_id", qp, where, (int, str)),
                question=get(q, "question", qp, where, str),
                answers=[],
                split=split,
                source=str(qp),
            )
        )
    by_id = {r.question_id: r for r in records}
    if len(by_id) != len(records):
        dup = [k for k, n in Counter(r.question_id for r in records).items() if n > 1]
        raise DataError(f"{len(dup)} duplicated question_id(s): {_ids(dup)}", qp)
    if annotations is None:
        return records

    ap = Path(annotations).expanduser()
    adoc = load_json(ap, "VQA annotations file")
    alist = get(adoc, "annotations", ap, "annotations file", list)
    seen: set[int] = set()
    for i, a in enumerate(alist):
        qid = get(a, "question_id", ap, f"annotation {i}", int)
        where = f"annotation {i} (question_id {qid})"
        if qid in seen:
            raise DataError(f"{where}: question_id annotated twice", ap)
        seen.add(qid)
        answers = get(a, "answers", ap, where, list)
        rec = by_id.get(qid)
        if rec is None:
            continue  # reported below with all the others
        image_id = get(a, "image_id", ap, where, (int, str))
        if image_id != rec.image_id:
            raise DataError(f"{where}: image_id {image_id} differs from the questions file's {rec.image_id} ({qp})", ap)
        rec.answers = [get(ans, "answer", ap, f"{where}, answer {j}", str) for j, ans in enumerate(answers)]
        rec.answer_type = get(a, "answer_type", ap, where, str, default=None)
    only_q, only_a = set(by_id) - seen, seen - set(by_id)
    if only_q or only_a:
        parts = []
        if only_q:
            parts.append(f"{len(only_q)} question_id(s) of {qp.name} have no annotation: {_ids(only_q)}")
        if only_a:
            parts.append(f"{len(only_a)} annotated question_id(s) are absent from {qp.name}: {_ids(only_a)}")
        raise DataError("questions and annotations do not match; " + "; ".join(parts), ap)
    return records


def read_gqa(path: str | os.PathLike, *, split: str | None = None, with_answers: bool = True) -> list[VQARecord]:
    """GQA questions JSON → records in file order, one raw answer each (``with_answers=False`` for
    the answer-less submission / test files: answers empty). Question and image ids stay strings."""
    p = Path(path).expanduser()
    doc = load_json(p, "GQA questions file")
    if not isinstance(doc, dict):
        raise DataError(f"expected a JSON object keyed by question id, got {type(doc).__name__}", p)
    records = []
    for qid, q in doc.items():
        where = f"question {qid!r}"
        answer = [get(q, "answer", p, where, str)] if with_answers else []
        records.append(
            VQARecord(
                question_id=qid,
                image_id=get(q, "imageId", p, where, (str, int)),
                question=get(q, "question", p, where, str),
                answers=answer,
                split=split,
                source=str(p),
            )
        )
    return records


def read_vg_qa(path: str | os.PathLike, *, split: str | None = None) -> list[VQARecord]:
    """Visual Genome ``question_answers.json`` → records (image order, then qa order), one raw
    answer each; ``question_id`` is the ``qa_id``."""
    p = Path(path).expanduser()
    doc = load_json(p, "Visual Genome question_answers file")
    if not isinstance(doc, list):
        raise DataError(f"expected a JSON list of images, got {type(doc).__name__}", p)
    records = []
    for i, img in enumerate(doc):
        key = "id" if isinstance(img, dict) and "id" in img else "image_id"
        image_id = get(img, key, p, f"image {i}", (int, str))
        for j, qa in enumerate(get(img, "qas", p, f"image {i} ({key} {image_id})", list)):
            qa_id = get(qa, "qa_id", p, f"image {i} ({key} {image_id}), qa {j}", (int, str))
            where = f"image {i} ({key} {image_id}), qa {j} (qa_id {qa_id})"
            own = qa.get("image_id", image_id)
            if own != image_id:
                raise DataError(f"{where}: image_id {own!r} differs from the image's {key} {image_id!r}", p)
            records.append(
                VQARecord(
                    question_id=qa_id,
                    image_id=image_id,
                    question=get(qa, "question", p, where, str),
                    answers=[get(qa, "answer", p, where, str)],
                    split=split,
                    source=str(p),
                )
            )
    return records


# ----------------------------------------------------------------------------------- answers
def build_answer_vocab(records: Sequence[VQARecord], *, min_count: int = 1, top_k: int | None = None) -> list[str]:
    """Normalised answers given to at least ``min_count`` questions (an answer counts once per
    question however many annotators gave it), most frequent first (ties alphabetical), at most
    ``top_k``. The list is the head's class names: answer id = position."""
    counts: Counter[str] = Counter()
    for r in records:
        counts.update({a for a in map(_normalize, r.answers) if a})
    ranked = sorted((a for a, n in counts.items() if n >= min_count), key=lambda a: (-counts[a], a))
    return ranked if top_k is None else ranked[:top_k]


def encode_answers(records: Sequence[VQARecord], vocab: Sequence[str]) -> tuple[np.ndarray, ReadReport]:
    """``answers`` int64 ``[N, 10]``: vocabulary ids of the normalised annotator answers, -1 for an
    answer outside ``vocab`` (and for every slot of a question without answers). A single answer
    (GQA, VG-QA) is repeated 10 times. Out-of-vocabulary answers, questions left with no answer in
    the vocabulary and unanswered questions are counted in the report, never an error."""
    index = {a: i for i, a in enumerate(vocab)}
    out = np.full((len(records), NUM_ANSWERS), -1, dtype=np.int64)
    report = ReadReport()
    for n, r in enumerate(records):
        if not r.answers:
            report.add("questions without answers", r.question_id)
            continue
        if len(r.answers) not in (1, NUM_ANSWERS):
            raise DataError(
                f"question {r.question_id}: {len(r.answers)} answers; expected 1 or {NUM_ANSWERS}", r.source or None
            )
        answers = r.answers * NUM_ANSWERS if len(r.answers) == 1 else r.answers
        for k, raw in enumerate(answers):
            norm = _normalize(raw)
            out[n, k] = index.get(norm, -1)
            if out[n, k] < 0 and (k == 0 or len(r.answers) > 1):
                report.add("answers outside the vocabulary", f"{r.question_id}: {norm!r}")
        if (out[n] < 0).all():
            report.add("questions with no answer in the vocabulary", r.question_id)
    return out, report
