"""SNLI-VE (visual entailment) → :class:`~cotrain.data.formats.vl.records.EntailRecord`.

The release (``snli_ve_train.jsonl``, ``snli_ve_dev.jsonl``, ``snli_ve_test.jsonl``) is SNLI
with the premise caption replaced by its Flickr30k image, one pair per line::

    {"Flickr30K_ID": "3416050480", "pairID": "3416050480.jpg#4r1n", "captionID": "3416050480.jpg#4",
     "sentence1": "<the premise caption, unused>", "sentence2": "A man is sleeping.",
     "gold_label": "neutral", "annotator_labels": ["neutral", ...], ...}

``id`` = ``pairID``; ``image_id`` = ``Flickr30K_ID`` as a string (the Flickr30k file stem, the
key the Flickr30k caption reader uses; ``<id>.jpg`` is the image; the NECLA parser's spelling
``Flikr30kID`` is accepted too, and when neither is present the id is taken from ``pairID``
before ``.jpg``); ``hypothesis`` = ``sentence2``; ``label`` = the position of ``gold_label`` in
``entailment, neutral, contradiction``. SNLI's ``"-"`` (no annotator consensus; the release
already drops these) is skipped and counted in the :class:`ReadReport`; any other unknown label
raises :class:`~cotrain.data.errors.DataError` naming the file, line and value.
"""

from __future__ import annotations

import os

from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import caller_split, get, iter_jsonl, resolve, split_from_name
from cotrain.data.formats.vl.records import ENTAILMENT_LABELS, EntailRecord, ReadReport

SNLI_VE_SPLITS = {"train": "train", "dev": "val", "val": "val", "test": "test"}
_IMAGE_KEYS = ("Flickr30K_ID", "Flikr30kID")


def _image_id(ex: dict, pair_id: str, p, where: str) -> str:
    for key in _IMAGE_KEYS:
        if ex.get(key) is not None:
            value = get(ex, key, p, where, (str, int))
            return str(value).strip().removesuffix(".jpg")
    if ".jpg" in pair_id:
        return pair_id.split(".jpg")[0]
    raise DataError(f"{where}: missing field 'Flickr30K_ID' (and 'pairID' names no .jpg)", p)


def read_snli_ve(path: str | os.PathLike, *, split: str | None = None) -> tuple[list[EntailRecord], ReadReport]:
    """An SNLI-VE JSON-lines file → one record per line, in file order.

    ``split``: given to every record; None takes it from the file name (``snli_ve_dev.jsonl`` →
    val) when the name states one."""
    p = resolve(path, "SNLI-VE JSON-lines file")
    canonical = caller_split(split, SNLI_VE_SPLITS) if split is not None else split_from_name(p, SNLI_VE_SPLITS)
    index = {name: i for i, name in enumerate(ENTAILMENT_LABELS)}
    report = ReadReport()
    records: list[EntailRecord] = []
    for lineno, ex in iter_jsonl(p, "SNLI-VE JSON-lines file"):
        where = f"line {lineno}"
        pair_id = str(get(ex, "pairID", p, where, (str, int)))
        where = f"line {lineno} (pairID {pair_id})"
        image_id = _image_id(ex, pair_id, p, where)
        hypothesis = get(ex, "sentence2", p, where, str).strip()
        gold = get(ex, "gold_label", p, where, str).strip().lower()
        if gold == "-":
            report.add("no gold label ('-')", pair_id)
            continue
        if gold not in index:
            raise DataError(
                f"{where}: unknown gold_label {ex['gold_label']!r} (expected {', '.join(ENTAILMENT_LABELS)})", p
            )
        if not hypothesis:
            raise DataError(f"{where}: field 'sentence2' is empty", p)
        records.append(EntailRecord(pair_id, image_id, hypothesis, index[gold], canonical, str(p)))
    return records, report
