"""A task's real vision-and-language source (``source.kind`` = vqa_v2, gqa, ... in the config) →
:class:`TaskData` with the arrays of ``docs/vl-contract.md``.

``source.files`` names the annotation files by split and role; the split ``all`` holds files that
cover every split (the records then carry their own split, e.g. Karpathy JSON, RefCOCO refs, Visual7W):

| kind | roles (per split, or under ``all``) | head |
| --- | --- | --- |
| vqa_v2 | ``questions``, ``annotations`` | vqa |
| gqa | ``questions`` | vqa |
| vg_qa | ``qa`` (question_answers.json; no split of its own: carved by image) | vqa |
| coco_captions, flickr30k | ``karpathy`` (dataset_*.json) or ``captions`` (COCO captions_*.json) | retrieval |
| refcoco | ``refs`` (refs(unc).p or .json), ``instances`` | refexp |
| visual7w | ``pointing`` (dataset_v7w_pointing.json) | refexp |
| guesswhat | ``games`` (guesswhat.*.jsonl[.gz]) | refexp |
| nlvr2 | ``statements`` (jsonl) | nlvr |
| snli_ve | ``pairs`` (snli_ve_*.jsonl) | snli-ve |

Visual input: ``source.regions`` (a folder of ``<image_id>.npz`` or a bottom-up-attention
``.tsv``) or ``source.images`` (an image folder, resized to ``model.encoders.image.image_size``).
The VQA answer vocabulary comes from the train split (``answer_min_count``, ``answer_top_k``).
What was skipped (missing images with ``missing: skip``, answers outside the vocabulary, ...) is
printed as a one-line report per split.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from ...arrays import Split, TaskData
from ...errors import DataError
from .records import ENTAILMENT_LABELS

SPLITS = ("train", "val", "test")
HEAD_TYPES = {
    "vqa_v2": "vqa", "gqa": "vqa", "vg_qa": "vqa", "coco_captions": "retrieval", "flickr30k": "retrieval",
    "refcoco": "refexp", "visual7w": "refexp", "guesswhat": "refexp", "nlvr2": "nlvr", "snli_ve": "snli-ve",
}
ROLES = {
    "vqa_v2": ("questions", "annotations"), "gqa": ("questions",), "vg_qa": ("qa",),
    "coco_captions": ("karpathy", "captions"), "flickr30k": ("karpathy", "captions"),
    "refcoco": ("refs", "instances"), "visual7w": ("pointing",), "guesswhat": ("games",),
    "nlvr2": ("statements",), "snli_ve": ("pairs",),
}


def _file(src, split: str, role: str, kind: str) -> str | None:
    for where in (split, "all"):
        if role in src.files.get(where, {}):
            return src.files[where][role]
    return None


def _check_files(src, kind: str) -> None:
    bad = sorted(set(src.files) - {*SPLITS, "all"})
    if bad:
        raise DataError(f"source.files has unknown split keys {bad}; use train, val, test or all")
    known = set(ROLES[kind])
    for split, roles in src.files.items():
        unknown = sorted(set(roles) - known)
        if unknown:
            raise DataError(f"source.files.{split} has roles {unknown}, which a {kind} source does not read; "
                            f"its roles: {sorted(known)}")


def _split_of_key(key, val_fraction: float, test_fraction: float, seed: int) -> str:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") / 2**64
    return "test" if h < test_fraction else "val" if h < test_fraction + val_fraction else "train"


def _records(kind: str, src, seed: int) -> dict[str, list]:
    """Records per split (carving by image when the files give no split)."""
    from . import captions, nlvr, refexp, snli_ve, vqa

    per: dict[str, list] = {s: [] for s in SPLITS}
    readers = {
        "vqa_v2": lambda s: vqa.read_vqa_v2(_file(src, s, "questions", kind), _file(src, s, "annotations", kind), split=s),
        "gqa": lambda s: vqa.read_gqa(_file(src, s, "questions", kind), split=s),
        "vg_qa": lambda s: vqa.read_vg_qa(_file(src, s, "qa", kind), split=s),
        "guesswhat": lambda s: refexp.read_guesswhat(_file(src, s, "games", kind), split=s)[0],
        "nlvr2": lambda s: nlvr.read_nlvr2(_file(src, s, "statements", kind), split=s)[0],
        "snli_ve": lambda s: snli_ve.read_snli_ve(_file(src, s, "pairs", kind), split=s)[0],
    }
    if kind in ("coco_captions", "flickr30k"):
        shared = src.files.get("all", {})
        if "karpathy" in shared:
            recs = captions.read_karpathy_captions(shared["karpathy"])[0]
            return {s: [r for r in recs if r.split == s] for s in SPLITS}
        for s in SPLITS:
            path = _file(src, s, "captions", kind) or _file(src, s, "karpathy", kind)
            if path is not None:
                per[s] = [r for r in captions.read_captions(path, split=s)[0] if r.split in (None, s)]
        return per
    if kind == "refcoco":
        recs = refexp.read_refcoco(_file(src, "train", "refs", kind), _file(src, "train", "instances", kind))[0]
        return {s: [r for r in recs if r.split == s] for s in SPLITS}
    if kind == "visual7w":
        recs = refexp.read_visual7w_pointing(_file(src, "train", "pointing", kind))[0]
        return {s: [r for r in recs if r.split == s] for s in SPLITS}
    if kind == "vg_qa" and "all" in src.files:
        recs = vqa.read_vg_qa(src.files["all"]["qa"])
        for r in recs:
            per[_split_of_key(r.image_id, src.val_fraction, src.test_fraction, seed)].append(r)
        return per
    for s in SPLITS:
        path_roles = [_file(src, s, role, kind) for role in ROLES[kind][:1]]
        if path_roles[0] is None:
            raise DataError(f"source.files gives no {ROLES[kind][0]!r} file for the {s} split of a {kind} source")
        per[s] = readers[kind](s)
    return per


def _visual(src, image_size: int):
    from .images import ImageFolderStore
    from .regions import NpzRegionStore, TsvRegionStore

    if src.regions:
        p = Path(src.regions).expanduser()
        if p.is_dir():
            return NpzRegionStore(p)
        if p.suffix.lower() in (".tsv", ".csv") or p.is_file():
            return TsvRegionStore(p)
        raise DataError("region features not found (a folder of .npz files or a .tsv file)", p)
    return ImageFolderStore(src.images, image_size)


def read_vl_source(task, cfg, progress: bool = False) -> TaskData:
    """Read, assemble and wrap one real V&L task of an experiment config."""
    from . import assemble
    from .vqa import build_answer_vocab

    src, kind = task.source, task.source.kind
    if kind not in HEAD_TYPES:
        raise DataError(f"task {task.name!r}: {kind!r} is not a vision-and-language source kind")
    _check_files(src, kind)
    seed = cfg.data.seed if src.seed is None else src.seed
    per = _records(kind, src, seed)
    empty = [s for s in SPLITS if not per[s]]
    if empty:
        raise DataError(f"task {task.name!r}: the {kind} files give no records for split(s) {empty}")
    visual = _visual(src, cfg.model.encoders.image.image_size)
    r_max = cfg.model.encoders.regions.max_regions
    head = HEAD_TYPES[kind]
    vocab = build_answer_vocab(per["train"], min_count=src.answer_min_count, top_k=src.answer_top_k) if head == "vqa" else None
    splits, meta = {}, {}
    for s in SPLITS:
        recs = per[s]
        if head == "vqa":
            out = assemble.assemble_vqa(recs, visual, vocab, r_max, missing=src.missing)
            by_id = {r.question_id: r for r in recs}
            raw = [(list(by_id[q].answers) * 10)[:10] if by_id[q].answers else [""] * 10 for q in out.meta["ids"]]
            out.arrays["answers_raw"] = np.asarray(raw, dtype=str)
        elif head == "retrieval":
            out = assemble.assemble_retrieval(recs, visual, s, r_max, seed=seed, missing=src.missing)
        elif head == "refexp":
            out = assemble.assemble_refexp(recs, visual, r_max, missing=src.missing)
        elif head == "nlvr":
            out = assemble.assemble_pairs(recs, visual, r_max, missing=src.missing)
        else:
            out = assemble.assemble_entailment(recs, visual, r_max, missing=src.missing)
        if out.report.skipped:
            print(f"[cotrain] {task.name}/{s}: {out.report.summary()}", file=sys.stderr)
        if len(out.arrays["label"]) == 0:
            raise DataError(f"task {task.name!r}: no usable {s} records remain ({out.report.summary()})")
        splits[s] = Split(out.arrays)
        meta = {**meta, **{k: v for k, v in out.meta.items() if k not in ("ids", "image_keys", "class_names")}}
    classes = {
        "vqa": vocab, "retrieval": ["match"], "refexp": ["region"], "nlvr": ["false", "true"],
        "snli-ve": list(ENTAILMENT_LABELS),
    }[head]
    meta.update(head_type=head, source_kind=kind)
    if "region_dim" not in meta and "regions" in splits["train"].arrays:
        meta["region_dim"] = int(splits["train"].arrays["regions"].shape[-1])
    return TaskData(task.name, "vl", list(classes), splits["train"], splits["val"], splits["test"], meta=meta)
