"""Referring expressions → :class:`~cotrain.data.formats.vl.records.RefRecord` (pixel boxes
``x0, y0, x1, y1``).

**RefCOCO / RefCOCO+ / RefCOCOg** (the ``refer`` release): ``refs(unc).p`` / ``refs(umd).p`` /
``refs(google).p`` is a pickled list of refs::

    {"ref_id": 0, "ann_id": 1719310, "image_id": 581857, "split": "train", "category_id": 1,
     "file_name": "COCO_train2014_000000581857_16.jpg",
     "sentences": [{"sent": "the lady with the blue shirt", "raw": "THE LADY ...",
                    "tokens": [...], "sent_id": 0}, ...], "sent_ids": [...]}

plus ``instances.json`` (COCO instances: ``annotations`` with ``id``, ``bbox`` ``[x, y, w, h]``;
``images`` with ``id``, ``width``, ``height``). One record per sentence: ``ref_id`` = the
sentence's ``sent_id`` (unique in a refs file), ``expression`` = ``sent`` (else ``raw``), ``box``
= the annotation's bbox as ``x0, y0, x1, y1``, ``image_size`` = ``(width, height)``. Splits
``train`` / ``val`` / ``test`` and the RefCOCO(+) parts ``testA`` (people), ``testB`` (objects)
and ``testC`` (google split) → test. A JSON conversion of the same list (``refs.json``) is read
too. The pickle is **never** loaded with plain :func:`pickle.load`: :func:`load_plain_pickle`
refuses every global (class or function) the stream names, so only builtin lists / dicts /
strings / numbers load and nothing in the file can run. Python 2 pickles (the original release)
load, their byte strings decoded as UTF-8 (Latin-1 when not UTF-8).

**Visual7W pointing** (``dataset_v7w_pointing.json``)::

    {"images": [{"image_id": 2354786, "filename": "v7w_2354786.jpg", "split": "val",
                 "qa_pairs": [{"qa_id": 986, "question": "Which is the ...?", "answer": 713,
                               "multiple_choices": [714, 715, 716], "type": "which"}]}],
     "boxes": [{"box_id": 713, "x": 10, "y": 20, "width": 30, "height": 40, "name": "cup"}]}

(the layout the Visual7W toolkit and public converters read: boxes are global, looked up by
``box_id``; ``answer`` and ``multiple_choices`` are box ids). ``candidates`` = the answer box and
the 3 choices, in an order fixed by ``qa_id`` (a SHA-256 ordering, the same on every run and
Python version); ``box`` = the answer box. The release gives no image size.

**GuessWhat?!** (``guesswhat.<train|valid|test>.jsonl[.gz]``, one game per line)::

    {"id": 2418, "image": {"id": 260136, "file_name": "...", "width": 640, "height": 480, ...},
     "objects": [{"id": 1212, "bbox": [x, y, w, h], "category": "cup", ...}], "object_id": 1212,
     "qas": [{"question": "is it a cup?", "answer": "No", "id": 4962}], "status": "success"}

``expression`` = the turns joined (``"is it a cup? no. is it red? yes."``), ``box`` = the target
object's box, ``candidates`` = every object's box (file order), ``image_size`` from the image.
Only games whose status is in ``statuses`` (default: success) are kept; the others, and games
with no questions, are counted in the :class:`ReadReport`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import (
    caller_split,
    get,
    iter_jsonl,
    load_json,
    map_split,
    number,
    resolve,
    split_from_name,
    xywh_to_xyxy,
)
from cotrain.data.formats.vl.records import Box, ReadReport, RefRecord

REF_SPLITS = {"train": "train", "val": "val", "test": "test", "testA": "test", "testB": "test", "testC": "test"}
V7W_SPLITS = {"train": "train", "val": "val", "test": "test"}
GUESSWHAT_SPLITS = {"train": "train", "valid": "val", "val": "val", "test": "test"}
GUESSWHAT_STATUSES = ("success", "failure", "incomplete")
_GUESSWHAT_ANSWERS = {"yes": "yes", "no": "no", "n/a": "n/a"}


# ------------------------------------------------------------------------- safe unpickling
class _Refused(pickle.UnpicklingError):
    """The stream asked for something a plain-data pickle never needs."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads only what needs no global: lists, dicts, tuples, strings, bytes, numbers, None."""

    def find_class(self, module: str, name: str):
        raise _Refused(f"the pickle names the global {module}.{name}")

    def persistent_load(self, pid):
        raise _Refused("the pickle uses a persistent id")


def _decode(obj):
    """Python 2 ``str`` values (bytes here) → str, recursively; UTF-8, Latin-1 as fallback."""
    if isinstance(obj, bytes):
        try:
            return obj.decode("utf-8")
        except UnicodeDecodeError:
            return obj.decode("latin-1")
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode(v) for v in obj)
    if isinstance(obj, dict):
        return {_decode(k): _decode(v) for k, v in obj.items()}
    return obj


def load_plain_pickle(path: str | os.PathLike) -> object:
    """Unpickle a file made only of builtin containers and scalars, refusing anything else.

    Every global (``os.system``, a class, even ``builtins.set``) is refused before it is looked
    up, so a malicious file raises :class:`DataError` and runs nothing: the opcodes that call
    something (REDUCE, NEWOBJ, BUILD, INST, OBJ) need a callable, and a callable only enters the
    stream through :meth:`find_class` (or the copyreg extension registry, empty in CPython unless
    a program registers codes). Persistent ids are refused too. Bytes are decoded to str."""
    p = resolve(path, "pickle file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read file: {err}", p) from err
    try:
        obj = _PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as err:
        raise DataError(
            f"refused to unpickle: {err}; only plain lists / dicts / strings / numbers are accepted "
            "(convert the file to JSON if it holds anything else)",
            p,
        ) from err
    except Exception as err:  # truncated or corrupt streams raise many kinds
        raise DataError(f"not a readable pickle: {type(err).__name__}: {err}", p) from err
    return _decode(obj)


# ------------------------------------------------------------------------------ RefCOCO
def _load_refs(p: Path) -> list:
    refs = load_json(p, "refs JSON") if p.suffix.lower() == ".json" else load_plain_pickle(p)
    if not isinstance(refs, list):
        raise DataError(f"expected a list of refs, got {type(refs).__name__}", p)
    return refs


def read_refcoco(
    refs_path: str | os.PathLike, instances_path: str | os.PathLike
) -> tuple[list[RefRecord], ReadReport]:
    """RefCOCO / RefCOCO+ / RefCOCOg refs (pickle, or ``.json``) + ``instances.json`` → one
    record per sentence, in file order."""
    rp = resolve(refs_path, "refs file")
    ip = resolve(instances_path, "instances JSON")
    refs = _load_refs(rp)
    inst = load_json(ip, "instances JSON")
    boxes: dict[int, Box] = {}
    for i, ann in enumerate(get(inst, "annotations", ip, "top level", list)):
        where = f"annotations[{i}]"
        boxes[get(ann, "id", ip, where, int)] = xywh_to_xyxy(get(ann, "bbox", ip, where), ip, where)
    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(get(inst, "images", ip, "top level", list)):
        where = f"images[{i}]"
        size = (int(number(img, "width", ip, where)), int(number(img, "height", ip, where)))
        sizes[get(img, "id", ip, where, int)] = size
    report = ReadReport()
    records: list[RefRecord] = []
    for i, ref in enumerate(refs):
        where = f"ref {i}"
        if isinstance(ref, dict) and "ref_id" in ref:
            where = f"ref {i} (ref_id {ref['ref_id']})"
        ann_id = get(ref, "ann_id", rp, where, int)
        image_id = get(ref, "image_id", rp, where, int)
        split = map_split(get(ref, "split", rp, where), REF_SPLITS, rp, where)
        if ann_id not in boxes:
            raise DataError(f"{where}: ann_id {ann_id} is not in {ip.name} (instances of another dataset?)", rp)
        if image_id not in sizes:
            raise DataError(f"{where}: image_id {image_id} is not in {ip.name} (instances of another dataset?)", rp)
        sentences = get(ref, "sentences", rp, where, list)
        if not sentences:
            report.add("ref without sentences", where)
        for j, sent in enumerate(sentences):
            swhere = f"{where} sentence {j}"
            text = get(sent, "sent", rp, swhere, str, default=None)
            if text is None:
                text = get(sent, "raw", rp, swhere, str)
            if not text.strip():
                report.add("empty sentence", swhere)
                continue
            sent_id = get(sent, "sent_id", rp, swhere, (int, str))
            records.append(
                RefRecord(sent_id, image_id, text.strip(), boxes[ann_id], split, None, sizes[image_id], str(rp))
            )
    return records, report


# ---------------------------------------------------------------------------- Visual7W
def _fixed_order(key: object, n: int) -> list[int]:
    """A permutation of ``range(n)`` fixed by ``key`` (independent of Python's ``random``)."""
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{key}:{i}".encode()).hexdigest())


def read_visual7w_pointing(path: str | os.PathLike) -> tuple[list[RefRecord], ReadReport]:
    """Visual7W pointing QA → one record per ``qa_pairs`` entry (question = expression)."""
    p = resolve(path, "Visual7W pointing JSON")
    data = load_json(p, "Visual7W pointing JSON")
    boxes: dict[int, Box] = {}
    for i, b in enumerate(get(data, "boxes", p, "top level", list)):
        where = f"boxes[{i}]"
        x, y = number(b, "x", p, where), number(b, "y", p, where)
        w, h = number(b, "width", p, where), number(b, "height", p, where)
        boxes[get(b, "box_id", p, where, int)] = xywh_to_xyxy([x, y, w, h], p, where, "x/y/width/height")
    report = ReadReport()
    records: list[RefRecord] = []
    for i, img in enumerate(get(data, "images", p, "top level", list)):
        where = f"images[{i}]"
        image_id = get(img, "image_id", p, where, (int, str))
        where = f"images[{i}] (image_id {image_id})"
        split = map_split(get(img, "split", p, where), V7W_SPLITS, p, where)
        for j, qa in enumerate(get(img, "qa_pairs", p, where, list)):
            qwhere = f"{where} qa_pairs[{j}]"
            qa_id = get(qa, "qa_id", p, qwhere, (int, str))
            qwhere = f"{qwhere} (qa_id {qa_id})"
            question = get(qa, "question", p, qwhere, str).strip()
            answer = get(qa, "answer", p, qwhere, int)
            choices = get(qa, "multiple_choices", p, qwhere, list)
            ids = [answer, *choices]
            for k, box_id in enumerate(ids):
                key = "answer" if k == 0 else f"multiple_choices[{k - 1}]"
                if isinstance(box_id, bool) or not isinstance(box_id, int) or box_id not in boxes:
                    raise DataError(f"{qwhere}: field {key!r} = {box_id!r} is not a box_id of 'boxes'", p)
            if not question:
                report.add("empty question", qwhere)
                continue
            candidates = [boxes[ids[k]] for k in _fixed_order(qa_id, len(ids))]
            records.append(RefRecord(qa_id, image_id, question, boxes[answer], split, candidates, None, str(p)))
    return records, report


# --------------------------------------------------------------------------- GuessWhat?!
def _dialog(qas: list, p: Path, where: str) -> str:
    turns = []
    for k, qa in enumerate(qas):
        qwhere = f"{where} qas[{k}]"
        question = get(qa, "question", p, qwhere, str).strip()
        answer = get(qa, "answer", p, qwhere, str)
        said = _GUESSWHAT_ANSWERS.get(answer.strip().lower())
        if said is None:
            raise DataError(f"{qwhere}: unknown answer {answer!r} (expected Yes, No or N/A)", p)
        turns.append(f"{question} {said}.")
    return " ".join(turns)


def read_guesswhat(
    path: str | os.PathLike, *, split: str | None = None, statuses: tuple[str, ...] = ("success",)
) -> tuple[list[RefRecord], ReadReport]:
    """GuessWhat?! games → one record per kept game (``ref_id`` = the game id).

    ``split``: given to every record; None takes it from the file name (``guesswhat.valid.jsonl``
    → val) when the name states one."""
    for s in statuses:
        if s not in GUESSWHAT_STATUSES:
            raise ValueError(f"unknown GuessWhat status {s!r}; use {', '.join(GUESSWHAT_STATUSES)}")
    p = resolve(path, "GuessWhat?! JSON-lines file")
    canonical = caller_split(split, GUESSWHAT_SPLITS) if split is not None else split_from_name(p, GUESSWHAT_SPLITS)
    report = ReadReport()
    records: list[RefRecord] = []
    for lineno, game in iter_jsonl(p, "GuessWhat?! JSON-lines file"):
        where = f"line {lineno}"
        game_id = get(game, "id", p, where, (int, str))
        status = get(game, "status", p, where, str)
        if status not in GUESSWHAT_STATUSES:
            raise DataError(f"{where}: unknown status {status!r} (expected {', '.join(GUESSWHAT_STATUSES)})", p)
        image = get(game, "image", p, where, dict)
        image_id = get(image, "id", p, f"{where} image", (int, str))
        size = (int(number(image, "width", p, f"{where} image")), int(number(image, "height", p, f"{where} image")))
        target = get(game, "object_id", p, where, int)
        by_id: dict[int, Box] = {}
        candidates: list[Box] = []
        for k, obj in enumerate(get(game, "objects", p, where, list)):
            owhere = f"{where} objects[{k}]"
            candidates.append(xywh_to_xyxy(get(obj, "bbox", p, owhere), p, owhere))
            by_id[get(obj, "id", p, owhere, int)] = candidates[-1]
        if target not in by_id:
            raise DataError(f"{where}: field 'object_id' = {target} is not the id of one of the game's objects", p)
        expression = _dialog(get(game, "qas", p, where, list), p, where)
        if status not in statuses:
            report.add(f"status {status}", f"game {game_id}")
            continue
        if not expression:
            report.add("game without questions", f"game {game_id}")
            continue
        records.append(
            RefRecord(game_id, image_id, expression, by_id[target], canonical, candidates, size, str(p))
        )
    return records, report
