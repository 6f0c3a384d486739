"""COCO / Flickr30k captions → :class:`~cotrain.data.formats.vl.records.CaptionRecord`.

Two layouts are read:

**Karpathy split** (``dataset_coco.json``, ``dataset_flickr30k.json``, ``dataset_flickr8k.json``)::

    {"dataset": "coco",
     "images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
                 "imgid": 0, "cocoid": 391895, "split": "test", "sentids": [0, 1, ...],
                 "sentences": [{"raw": "A man ...", "tokens": ["a", "man", ...],
                                "imgid": 0, "sentid": 0}, ...]}, ...]}

``image_id`` is ``cocoid`` (int) when the image entry has one (COCO), else the file-name stem
(str; Flickr30k ``"1000092795"``, the same key SNLI-VE's ``Flickr30K_ID`` uses). ``file_name`` is
``filepath/filename`` when ``filepath`` is given (COCO: ``val2014/COCO_val2014_....jpg``), else
``filename``. The caption is ``raw`` (stripped), or the ``tokens`` joined by spaces when ``raw`` is
absent. Splits: ``train``, ``val``, ``test``; ``restval`` (the 30k COCO val images Karpathy moved to
training) counts as train.

**Plain COCO captions** (``captions_train2014.json``)::

    {"images": [{"id": 391895, "file_name": "COCO_val2014_000000391895.jpg", ...}],
     "annotations": [{"id": 770337, "image_id": 391895, "caption": "A man ..."}, ...]}

One record per annotation, ``image_id`` = the annotation's ``image_id``; the split is the caller's.

An empty caption is skipped and counted in the :class:`ReadReport`; a malformed entry raises
:class:`~cotrain.data.errors.DataError` naming the file, the entry and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import caller_split, get, load_json, map_split, resolve
from cotrain.data.formats.vl.records import CaptionRecord, ReadReport

KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
CALLER_SPLITS = {**KARPATHY_SPLITS, "validation": "val", "dev": "val", "minival": "val"}


def _caption_of(sentence: object, p: Path, where: str) -> str:
    raw = get(sentence, "raw", p, where, str, default=None)
    if raw is None:
        tokens = get(sentence, "tokens", p, where, list)
        if not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}: field 'tokens' must be a list of strings", p)
        raw = " ".join(tokens)
    return raw.strip()


def read_karpathy_captions(
    path: str | os.PathLike, *, splits: tuple[str, ...] | None = None
) -> tuple[list[CaptionRecord], ReadReport]:
    """Read a Karpathy-split caption file; one record per sentence, in file order.

    ``splits``: keep only these canonical splits (e.g. ``("test",)``); None keeps all."""
    p = resolve(path, "Karpathy caption JSON")
    return _karpathy(load_json(p, "Karpathy caption JSON"), p, splits)


def _karpathy(data: object, p: Path, splits: tuple[str, ...] | None) -> tuple[list[CaptionRecord], ReadReport]:
    images = get(data, "images", p, "top level", list)
    is_coco = isinstance(data, dict) and data.get("dataset") == "coco"
    report = ReadReport()
    records: list[CaptionRecord] = []
    for i, img in enumerate(images):
        where = f"image {i}"
        if isinstance(img, dict) and "imgid" in img:
            where = f"image {i} (imgid {img['imgid']})"
        filename = get(img, "filename", p, where, str)
        if "cocoid" in img or is_coco:
            image_id: int | str = get(img, "cocoid", p, where, int)
        else:
            image_id = Path(filename).stem
        filepath = get(img, "filepath", p, where, str, default=None)
        file_name = f"{filepath}/{filename}" if filepath else filename
        split = map_split(get(img, "split", p, where), KARPATHY_SPLITS, p, where)
        if splits is not None and split not in splits:
            continue
        sentences = get(img, "sentences", p, where, list)
        for j, sentence in enumerate(sentences):
            swhere = f"{where} sentence {j}"
            caption = _caption_of(sentence, p, swhere)
            if not caption:
                report.add("empty caption", swhere)
                continue
            records.append(CaptionRecord(image_id, caption, split, file_name=file_name, source=str(p)))
    return records, report


def read_coco_captions(
    path: str | os.PathLike, *, split: str | None = None
) -> tuple[list[CaptionRecord], ReadReport]:
    """Read a plain COCO captions file (``captions_<set>.json``); one record per annotation.

    ``split`` (train / val / test; ``restval`` → train, ``minival`` / ``dev`` → val) is given to
    every record, since the file does not state one."""
    canonical = caller_split(split, CALLER_SPLITS)
    p = resolve(path, "COCO captions JSON")
    return _coco(load_json(p, "COCO captions JSON"), p, canonical)


def _coco(data: object, p: Path, canonical: str | None) -> tuple[list[CaptionRecord], ReadReport]:
    images = get(data, "images", p, "top level", list)
    annotations = get(data, "annotations", p, "top level", list)
    files: dict[int, str] = {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        files[get(img, "id", p, where, int)] = get(img, "file_name", p, where, str)
    report = ReadReport()
    records: list[CaptionRecord] = []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if isinstance(ann, dict) and "id" in ann:
            where = f"annotations[{i}] (id {ann['id']})"
        image_id = get(ann, "image_id", p, where, int)
        if image_id not in files:
            raise DataError(f"{where}: image_id {image_id} is not among the file's images", p)
        caption = get(ann, "caption", p, where, str).strip()
        if not caption:
            report.add("empty caption", where)
            continue
        records.append(CaptionRecord(image_id, caption, canonical, file_name=files[image_id], source=str(p)))
    return records, report


def read_captions(
    path: str | os.PathLike, *, split: str | None = None
) -> tuple[list[CaptionRecord], ReadReport]:
    """Either layout, told apart by its keys: ``annotations`` → plain COCO (``split`` applies to
    every record), image entries with ``sentences`` → Karpathy (``split`` keeps only that split)."""
    p = resolve(path, "caption JSON")
    data = load_json(p, "caption JSON")
    if isinstance(data, dict) and "annotations" in data:
        return _coco(data, p, caller_split(split, CALLER_SPLITS))
    if isinstance(data, dict) and "images" in data:
        keep = None if split is None else (caller_split(split, CALLER_SPLITS),)
        return _karpathy(data, p, keep)
    raise DataError(
        "not a caption file: expected a Karpathy split ({'images': [{'sentences': ...}]}) or "
        "COCO captions ({'images': ..., 'annotations': [{'image_id', 'caption'}]})",
        p,
    )
