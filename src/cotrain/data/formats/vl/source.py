"""A task's real vision-and-language source (``source.kind`` = vqa_v2, gqa, ... in the config) →
:class:`TaskData` with the arrays of ``docs/vl-contract.md``.

``source.files`` names the annotation files by split and role; the split ``all`` holds files that
cover every split (the records then carry their own split, e.g. Karpathy JSON, RefCOCO refs, Visual7W;
records without one count as train). Train must be given; a val or test split with no file (and
no records of its own) is carved out of train **by image** (:mod:`cotrain.data.formats.vl.splits`:
all rows of one image, or of one NLVR2 image set, go to the same split), ``val_fraction`` /
``test_fraction`` of the train images, seeded by ``source.seed`` (else ``data.seed``), and printed
as a one-line report. A split's own file wins: a fraction other than its default (0.1) given for a
split that has one is an error naming both, since it would do nothing.

| kind | roles (per split, or under ``all``) | head |
| --- | --- | --- |
| vqa_v2 | ``questions``, ``annotations`` | vqa |
| gqa | ``questions`` | vqa |
| vg_qa | ``qa`` (question_answers.json; no split of its own: val / test carved) | vqa |
| coco_captions, flickr30k | ``karpathy`` (dataset_*.json) or ``captions`` (COCO captions_*.json) | retrieval (pretrain under a ``pretrain`` head) |
| conceptual_captions | ``captions`` (the caption<TAB>image TSV) | pretrain |
| refcoco | ``refs`` (refs(unc).p or .json), ``instances`` | refexp |
| visual7w | ``pointing`` (dataset_v7w_pointing.json) | refexp |
| guesswhat | ``games`` (guesswhat.*.jsonl[.gz]) | refexp |
| nlvr2 | ``statements`` (jsonl) | nlvr |
| snli_ve | ``pairs`` (snli_ve_*.jsonl) | snli-ve |

Visual input: ``source.regions`` (a folder of ``<image_id>.npz`` or a bottom-up-attention
``.tsv``) or ``source.images`` (an image folder, resized to ``model.encoders.image.image_size``).
Each split's distinct images are read once into a visual store (:mod:`cotrain.data.stores`; rows
reference it by ``visual_index``): in memory when small, else written to and memory-mapped from
``<data root>/stores/<fingerprint>/`` (:func:`store_cache`), where the next run over the same
files finds it. The VQA answer vocabulary comes from the train split (``answer_min_count``, ``answer_top_k``).
What was skipped (missing images with ``missing: skip``, answers outside the vocabulary, ...) is
printed as a one-line report per split and counted in ``meta["skipped"][split]`` (reason → rows).
A Conceptual Captions source always skips the rows whose image file is missing (a web dataset's
dead links), whatever ``missing`` says.

The head the data is for is :func:`data_head_type`: the kind's (``HEAD_TYPES``), except that a
COCO / Flickr30k caption source whose task's head is configured ``type: pretrain`` gives caption
pretraining rows (one per caption, no label, :func:`~.assemble.assemble_captions`) instead of
retrieval rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ...arrays import TaskData
from ...errors import DataError
from ...stores import StoreCache
from .records import ENTAILMENT_LABELS

SPLITS = ("train", "val", "test")
HEAD_TYPES = {
    "vqa_v2": "vqa", "gqa": "vqa", "vg_qa": "vqa", "coco_captions": "retrieval", "flickr30k": "retrieval",
    "conceptual_captions": "pretrain",
    "refcoco": "refexp", "visual7w": "refexp", "guesswhat": "refexp", "nlvr2": "nlvr", "snli_ve": "snli-ve",
}
ROLES = {
    "vqa_v2": ("questions", "annotations"), "gqa": ("questions",), "vg_qa": ("qa",),
    "coco_captions": ("karpathy", "captions"), "flickr30k": ("karpathy", "captions"),
    "conceptual_captions": ("captions",),
    "refcoco": ("refs", "instances"), "visual7w": ("pointing",), "guesswhat": ("games",),
    "nlvr2": ("statements",), "snli_ve": ("pairs",),
}
STORE_MIN_BYTES = 64 << 20  # a split's visual store at least this large is cached on disk (see store_cache)
MAIN_ROLES = {"coco_captions": ("karpathy", "captions"), "flickr30k": ("karpathy", "captions")}  # else ROLES[kind][0]
PRETRAIN_CAPTION_KINDS = ("coco_captions", "flickr30k")  # caption sources a pretrain head reads as pretraining rows
CLASS_NAMES = {"retrieval": ["match"], "refexp": ["region"], "nlvr": ["false", "true"],
               "snli-ve": list(ENTAILMENT_LABELS), "pretrain": ["caption"]}  # vqa: the answers


def data_head_type(task, cfg) -> str:
    """The head kind the data of a real V&L task is for: its kind's (:data:`HEAD_TYPES`), or
    ``pretrain`` for a COCO / Flickr30k caption source whose head (``model.heads.<key>.type``) is
    a pretrain head."""
    kind = task.source.kind
    head = cfg.model.heads.get(task.head_key)
    if kind in PRETRAIN_CAPTION_KINDS and head is not None and head.type == "pretrain":
        return "pretrain"
    return HEAD_TYPES[kind]


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


def _reader(kind: str, src):
    """``read(where, split)`` → the records of the files under ``source.files[where]``; ``split``
    None lets the records keep their own split (from the file) or none."""
    from . import captions, conceptual, nlvr, refexp, snli_ve, vqa

    f = lambda where, role: _file(src, where, role, kind)  # noqa: E731
    return {
        "vqa_v2": lambda w, s: vqa.read_vqa_v2(f(w, "questions"), f(w, "annotations"), split=s),
        "gqa": lambda w, s: vqa.read_gqa(f(w, "questions"), split=s),
        "vg_qa": lambda w, s: vqa.read_vg_qa(f(w, "qa"), split=s),
        "coco_captions": lambda w, s: captions.read_captions(f(w, "karpathy") or f(w, "captions"), split=s)[0],
        "flickr30k": lambda w, s: captions.read_captions(f(w, "karpathy") or f(w, "captions"), split=s)[0],
        "conceptual_captions": lambda w, s: conceptual.read_conceptual_captions(f(w, "captions"), split=s)[0],
        "refcoco": lambda w, s: refexp.read_refcoco(f(w, "refs"), f(w, "instances"))[0],
        "visual7w": lambda w, s: refexp.read_visual7w_pointing(f(w, "pointing"))[0],
        "guesswhat": lambda w, s: refexp.read_guesswhat(f(w, "games"), split=s)[0],
        "nlvr2": lambda w, s: nlvr.read_nlvr2(f(w, "statements"), split=s)[0],
        "snli_ve": lambda w, s: snli_ve.read_snli_ve(f(w, "pairs"), split=s)[0],
    }[kind]


def _given(kind: str, src) -> tuple[dict[str, list], dict[str, str]]:
    """Records per split as the files give them, and where each given split comes from
    (``{"val": "source.files.val"}``); a split absent from that dict has no file and is carved.

    A file under ``source.files.<split>`` gives that split (even when it turns out empty); a file
    under ``all`` (and RefCOCO / Visual7W files anywhere) gives each split its records carry,
    records without one counting as train."""
    main = MAIN_ROLES.get(kind, ROLES[kind][:1])
    where = [w for w in ("all", *SPLITS) if any(role in src.files.get(w, {}) for role in main)]
    if "all" in where and len(where) > 1:
        raise DataError(f"source.files gives {' / '.join(main)} both under all and under {where[1:]}; "
                        f"give one file for every split (all) or one per split")
    read = _reader(kind, src)
    per: dict[str, list] = {s: [] for s in SPLITS}
    origin: dict[str, str] = {}
    for w in where:
        own_split = w != "all" and kind not in ("refcoco", "visual7w")
        for r in read(w, w if own_split else None):
            s = r.split or "train"
            per[s].append(r)
            origin.setdefault(s, f"source.files.{w}")
        if own_split:
            origin.setdefault(w, f"source.files.{w}")
    if "train" not in origin:
        raise DataError(f"source.files gives no {' / '.join(main)} file with train records for a {kind} source "
                        f"(val / test can be carved from train, not train from them)")
    return per, origin


def _carve(task, per: dict[str, list], origin: dict[str, str], seed: int) -> dict[str, list]:
    """Fill the splits without a file from train, by image (:mod:`.splits`); a fraction set for a
    split that has its own file is an error (the file wins, so the key would do nothing)."""
    from .splits import carve_by_image

    src, kind = task.source, task.source.kind
    for s in ("val", "test"):
        key = f"{s}_fraction"
        value, default = getattr(src, key), type(src).model_fields[key].default
        if s in origin and value != default:
            raise DataError(
                f"task {task.name!r}: source.{key} = {value} has no effect: the {s} split comes from "
                f"{origin[s]} (a split's own file wins over a fraction); drop source.{key}, or the {s} "
                f"file to carve {s} out of train by image"
            )
    missing = [s for s in ("val", "test") if s not in origin]
    if not missing:
        return per
    fraction = {s: getattr(src, f"{s}_fraction") if s in missing else 0.0 for s in ("val", "test")}
    carved = carve_by_image(per["train"], val_fraction=fraction["val"], test_fraction=fraction["test"], seed=seed)
    for s in missing:
        if not carved.records[s]:
            raise DataError(
                f"task {task.name!r}: the {kind} source has no {s} file, and source.{s}_fraction = {fraction[s]} "
                f"of its {sum(carved.groups.values())} train image group(s) carves no {s} split; give a {s} file, "
                f"a positive {s}_fraction or more train images"
            )
    out = {**per, "train": carved.records["train"], **{s: carved.records[s] for s in missing}}
    unit = "image sets" if kind == "nlvr2" else "images"
    parts = [f"{s} {carved.groups[s]} {unit} / {len(out[s])} rows ({s}_fraction {fraction[s]})" for s in missing]
    print(f"[cotrain] {task.name}: carved from train by image (seed {seed}): {', '.join(parts)}; "
          f"train keeps {carved.groups['train']} {unit} / {len(out['train'])} rows", file=sys.stderr)
    return out


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


def store_cache(cfg) -> StoreCache:
    """Where the visual stores of real sources are cached: ``<data root>/stores/`` (``data.root``,
    else ``$COTRAIN_DATA``, else ``~/.cache/cotrain``); stores under 64 MiB stay in memory."""
    from ...sources import data_root

    return StoreCache(data_root(cfg) / "stores", STORE_MIN_BYTES)


def read_vl_source(task, cfg, progress: bool = False) -> TaskData:
    """Read, assemble and wrap one real V&L task of an experiment config."""
    from . import assemble
    from .vqa import build_answer_vocab

    src, kind = task.source, task.source.kind
    if kind not in HEAD_TYPES:
        raise DataError(f"task {task.name!r}: {kind!r} is not a vision-and-language source kind")
    _check_files(src, kind)
    seed = cfg.data.seed if src.seed is None else src.seed
    per = _carve(task, *_given(kind, src), seed)
    empty = [s for s in SPLITS if not per[s]]
    if empty:
        raise DataError(f"task {task.name!r}: the {kind} files give no records for split(s) {empty}")
    visual = _visual(src, cfg.model.encoders.image.image_size)
    r_max = cfg.model.encoders.regions.max_regions
    cache = store_cache(cfg)
    head = data_head_type(task, cfg)
    missing = "skip" if kind == "conceptual_captions" else src.missing
    vocab = build_answer_vocab(per["train"], min_count=src.answer_min_count, top_k=src.answer_top_k) if head == "vqa" else None
    splits, meta, skipped = {}, {}, {}
    for s in SPLITS:
        recs = per[s]
        if head == "vqa":
            out = assemble.assemble_vqa(recs, visual, vocab, r_max, missing=missing, cache=cache)
            by_id = {r.question_id: r for r in recs}
            raw = [(list(by_id[q].answers) * 10)[:10] if by_id[q].answers else [""] * 10 for q in out.meta["ids"]]
            out.arrays["answers_raw"] = np.asarray(raw, dtype=str)
        elif head == "retrieval":
            out = assemble.assemble_retrieval(recs, visual, s, r_max, candidates=task.retrieval.data_candidates,
                                              missing=missing, cache=cache)
        elif head == "refexp":
            out = assemble.assemble_refexp(recs, visual, r_max, missing=missing, cache=cache)
        elif head == "nlvr":
            out = assemble.assemble_pairs(recs, visual, r_max, missing=missing, cache=cache)
        elif head == "pretrain":
            out = assemble.assemble_captions(recs, visual, r_max, missing=missing, cache=cache)
        else:
            out = assemble.assemble_entailment(recs, visual, r_max, missing=missing, cache=cache)
        if out.report.skipped:
            print(f"[cotrain] {task.name}/{s}: {out.report.summary()}", file=sys.stderr)
        skipped[s] = dict(out.report.skipped)
        if len(out.split) == 0:
            raise DataError(f"task {task.name!r}: no usable {s} records remain ({out.report.summary()})")
        splits[s] = out.split
        meta = {**meta, **{k: v for k, v in out.meta.items() if k not in ("ids", "image_keys", "class_names")}}
    classes = vocab if head == "vqa" else CLASS_NAMES[head]
    meta.update(head_type=head, source_kind=kind, skipped=skipped)
    if "region_dim" not in meta and "regions" in splits["train"]:
        meta["region_dim"] = int(splits["train"].stores["visual"].arrays["regions"].shape[-1])
    return TaskData(task.name, list(classes), splits["train"], splits["val"], splits["test"], meta=meta)
