"""Records + region features (or images) → one split, as ``docs/vl-contract.md`` fixes.

``visual`` is a region store (:class:`~cotrain.data.formats.vl.regions.NpzRegionStore`,
:class:`~cotrain.data.formats.vl.regions.TsvRegionStore` or anything with ``get(key) ->
RegionFeatures`` and ``in``) or an :class:`~cotrain.data.formats.vl.images.ImageFolderStore`.

Each distinct image is read once and written once into the split's
:class:`~cotrain.data.stores.VisualStore` ``"visual"``; each row references it through
``visual_index`` int64 ``[N]`` / ``[N, K]``:

- region store → store arrays ``regions`` float16 ``[M, R, F]``, ``boxes`` float32 ``[M, R, 4]``
  (normalised by each image's own width / height) and ``region_mask`` bool ``[M, R]``: the first
  ``max_regions`` regions of the image, zero-padded;
- image store → ``image`` uint8 ``[M, 3, S, S]``.

A batch (``Split.take``) gathers them as ``regions [B, (K,) R, F]`` etc. Where the store lives:
``cache=None`` keeps it in memory; with a :class:`~cotrain.data.stores.StoreCache` a store of at
least ``cache.min_bytes`` is written row by row to ``cache.root/<fingerprint>/`` and opened
memory-mapped, and reused by a later run whose fingerprint matches (the visual source's files -
path, size, mtime of each image's file or of the TSV files -, ``max_regions`` / image size and the
rows in order). Visual sources other than the three classes above are always kept in memory.

Every assembler also gives ``text_raw`` str ``[N]`` and ``image_id`` int64 ``[N]`` / ``[N, K]``:
integer keys (and all-digit strings) keep their value, any other key (GQA's ``n161313``, NLVR2's
``train-10171-0-img0``) becomes ``2**62 + blake2b(key) mod 2**62`` - the same in every split and
run, so a clean-split check can compare ids across splits. ``meta["image_keys"]`` maps every id of
the split back to its key; ``meta["ids"]`` lists the record ids in row order.

A record that names its image file (``CaptionRecord.file_name``) is looked up by that name in an
image folder (:meth:`~cotrain.data.formats.vl.images.ImageFolderStore.bind`: ``<images>/<file_name>``,
else ``<images>/<base name>``, else the one file of that name under the folder), other records by
their image id. A record whose image is missing from ``visual`` raises :class:`MissingImageError`
naming the record, the image and the paths tried with ``missing="fail"``; with ``missing="skip"``
it is left out and counted in the returned :class:`ReadReport`. Each assembler returns
:class:`Assembled` ``(split, report, meta)``.
"""

from __future__ import annotations

import hashlib
from typing import Callable, NamedTuple, Sequence

import numpy as np

from cotrain.data.arrays import Split
from cotrain.data.errors import DataError
from cotrain.data.formats.vl.records import (
    CaptionRecord, EntailRecord, ImageKey, MissingImageError, PairRecord, ReadReport, RefRecord, VQARecord,
    normalize_image_key,
)
from cotrain.data.formats.vl.visual_store import Reader as _Reader
from cotrain.data.formats.vl.visual_store import StoreRow, build_visual_store, image_rows
from cotrain.data.formats.vl.vqa import encode_answers, soft_scores
from cotrain.data.stores import StoreCache, VisualStore
from cotrain.metrics.vqa_types import answer_type_of

_HASH_BASE = 1 << 62


class Assembled(NamedTuple):
    """``split``: row arrays + the store ``"visual"``; ``report``: what was skipped; ``meta``."""

    split: Split
    report: ReadReport
    meta: dict

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The split's row arrays (the visual ones are in ``split.stores["visual"]``)."""
        return self.split.arrays


# ----------------------------------------------------------------------------------- helpers
def image_id_int(key: object) -> int:
    """The int64 ``image_id`` of an image key (see the module docstring)."""
    k = normalize_image_key(key)
    if isinstance(k, int):
        if not 0 <= k < _HASH_BASE:
            raise ValueError(f"integer image id {k} outside [0, 2**62)")
        return k
    digest = hashlib.blake2b(k.encode("utf-8"), digest_size=8).digest()
    return _HASH_BASE + int.from_bytes(digest, "little") % _HASH_BASE


def _image_ids(keys: np.ndarray) -> tuple[np.ndarray, dict[int, ImageKey]]:
    table: dict[int, ImageKey] = {}
    out = np.zeros(keys.shape, dtype=np.int64)
    for idx, key in np.ndenumerate(keys):
        i = image_id_int(key)
        if i in table and normalize_image_key(table[i]) != normalize_image_key(key):
            raise DataError(f"image keys {table[i]!r} and {key!r} hash to the same image_id {i}")
        table.setdefault(i, key)
        out[idx] = i
    return out, table


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU float32 ``[M, K]`` of boxes ``a`` ``[M, 4]`` and ``b`` ``[K, 4]`` (``x0, y0, x1, y1``)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def _normalise(box, size: tuple[int, int], where: str, source: str) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise DataError(f"{where}: box must be finite x0, y0, x1, y1 with x1 >= x0, y1 >= y0; got {box}",
                        source or None)
    w, h = size
    return np.clip(b / np.array([w, h, w, h], dtype=np.float64), 0.0, 1.0).astype(np.float32)


def _keep(records, reader: _Reader, keys_of: Callable, name_of: Callable, missing: str) -> tuple[list, ReadReport]:
    """The records whose images the visual source has. A record naming its image file
    (``file_name``) is looked up by that name in an image folder (:meth:`ImageFolderStore.bind`)."""
    if missing not in ("fail", "skip"):
        raise ValueError(f"missing must be 'fail' or 'skip', got {missing!r}")
    kept, report = [], ReadReport()
    for r in records:
        if reader.is_image and getattr(r, "file_name", None):
            reader.visual.bind(r.image_id, r.file_name)
        absent = [k for k in keys_of(r) if k not in reader]
        if not absent:
            kept.append(r)
            continue
        tried = reader.visual.tried(absent[0]) if reader.is_image else None  # the paths looked at
        if missing == "fail":
            more = f" ({tried})" if tried else ""
            raise MissingImageError(f"{name_of(r)}: image {absent[0]!r} not found in {reader.visual!r}{more}",
                                    r.source or None)
        shown = f"image {absent[0]!r}" + (f": {tried}" if tried else "")
        report.add("records whose image is missing", f"{name_of(r)} ({shown})")
    return kept, report


def _merge(into: ReadReport, other: ReadReport) -> ReadReport:
    for reason, n in other.skipped.items():
        into.skipped[reason] = into.skipped.get(reason, 0) + n
        into.examples.setdefault(reason, []).extend(other.examples[reason][: 5 - len(into.examples.get(reason, []))])
    return into


def _finish(kept, keys: np.ndarray, texts, ids, reader: _Reader, head_type: str, report, extra: dict,
            cache: StoreCache | None, rows: list[StoreRow] | None = None, index: np.ndarray | None = None,
            store: VisualStore | None = None) -> Assembled:
    """The split of ``kept`` records: its store (``store``, else built) holds ``rows`` (default:
    the distinct images of ``keys``), referenced by ``index`` (default: of ``keys``' shape)."""
    if rows is None:
        rows, index = image_rows(keys)
    if store is None:
        store = build_visual_store(reader, rows, cache)
    image_id, table = _image_ids(keys)
    arrays = {"text_raw": np.array(texts, dtype=np.str_).reshape(len(kept)), "image_id": image_id,
              "visual_index": index, **extra}
    dim = None if reader.is_image else (int(store.arrays["regions"].shape[-1]) if len(store) else 0)
    meta = {"head_type": head_type, "ids": list(ids), "image_keys": table, "region_dim": dim,
            "max_regions": None if reader.is_image else reader.max_regions,
            "image_size": reader.visual.image_size if reader.is_image else None}
    return Assembled(Split(arrays, {"visual": store}), report, meta)


def _keys(keys: list) -> np.ndarray:
    """Image keys → object array ``[N]`` (keys of mixed types kept as they are)."""
    out = np.empty(len(keys), dtype=object)
    for i, key in enumerate(keys):
        out[i] = key
    return out


# ----------------------------------------------------------------------------------- assemblers
def assemble_vqa(records: Sequence[VQARecord], visual, vocab: Sequence[str], max_regions: int = 36, *,
                 missing: str = "fail", cache: StoreCache | None = None) -> Assembled:
    """VQA / GQA / VG-QA → ``answers`` int64 ``[N, 10]`` (-1 outside ``vocab``), ``label`` float32
    ``[N, A]`` soft scores, ``answer_type`` str ``[N]`` (the record's, else derived from its answers
    by :func:`~cotrain.metrics.vqa_types.answer_type_of`; "" unknown; absent when no row has one),
    plus text / image / visual arrays. Out-of-vocabulary answers are counted in the report."""
    if len(vocab) == 0:
        raise ValueError("the answer vocabulary is empty")
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"question {r.question_id}", missing)
    answers, answer_report = encode_answers(kept, vocab)
    extra = {"answers": answers, "label": soft_scores(answers, len(vocab))}
    types = [r.answer_type or answer_type_of(r.answers) or "" for r in kept]
    if any(types):  # else unknown throughout (e.g. a test split without answers): left out
        extra["answer_type"] = np.asarray(types, dtype=str)
    out = _finish(kept, _keys([r.image_id for r in kept]), [r.question for r in kept], [r.question_id for r in kept],
                  reader, "vqa", _merge(report, answer_report), extra, cache)
    out.meta["class_names"] = list(vocab)
    return out


def assemble_refexp(records: Sequence[RefRecord], visual, max_regions: int = 36, *, missing: str = "fail",
                    iou_threshold: float = 0.5, cache: StoreCache | None = None) -> Assembled:
    """Referring expressions → ``label`` float32 ``[N, R]`` (IoU of each proposal with the referred
    box where ≥ ``iou_threshold``, else 0) and ``target_box`` float32 ``[N, 4]`` (normalised by the
    record's ``image_size``, else the store's image size).

    Proposals: without ``candidates``, the store's first ``max_regions`` regions (the image's store
    row, shared by its expressions). With candidates (Visual7W pointing, GuessWhat) the candidates
    are the proposals (``boxes``, ``region_mask``): with a region store the record gets a store row
    of its own, where each candidate takes the features of the image region (any of them, not only
    the first ``max_regions``) with the highest IoU with it - a candidate overlapping no region takes
    region 0's and is counted in the report. An image store needs candidates (it has no proposals):
    its store holds the pixels per image, and ``boxes`` / ``region_mask`` are row arrays.
    """
    reader = _Reader(visual, max_regions)
    name = lambda r: f"ref {r.ref_id}"  # noqa: E731
    for r in records:
        if reader.is_image and not r.candidates:
            raise DataError(f"{name(r)}: no candidate boxes, and an image store has no proposals; use a region store",
                            r.source or None)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), name, missing)
    n, r_max = len(kept), max_regions
    target, cands = np.zeros((n, 4), np.float32), {}
    for i, r in enumerate(kept):
        frame = tuple(r.image_size) if r.image_size else reader.size(r.image_id)
        target[i] = _normalise(r.box, frame, name(r), r.source)[0]
        if r.candidates:
            if len(r.candidates) > r_max:
                report.add(f"candidates beyond max_regions={r_max} dropped", name(r))
            cands[i] = _normalise(r.candidates[:r_max], frame, name(r), r.source)
    keys, texts, ids = _keys([r.image_id for r in kept]), [r.expression for r in kept], [r.ref_id for r in kept]
    if reader.is_image:  # candidates define the proposals; no features
        boxes, mask = np.zeros((n, r_max, 4), np.float32), np.zeros((n, r_max), bool)
        for i, c in cands.items():
            boxes[i, : len(c)], mask[i, : len(c)] = c, True
        out = _finish(kept, keys, texts, ids, reader, "refexp", report, {"boxes": boxes, "region_mask": mask}, cache)
        out.meta["max_regions"] = r_max
    else:
        rows, where, index = [], {}, np.zeros(n, dtype=np.int64)
        for i, r in enumerate(kept):
            k = normalize_image_key(r.image_id)
            if i in cands:  # its own proposals: a row of its own
                index[i] = len(rows)
                rows.append(StoreRow(r.image_id, cands[i], name(r)))
                continue
            if k not in where:
                where[k] = len(rows)
                rows.append(StoreRow(r.image_id))
            index[i] = where[k]
        out = _finish(kept, keys, texts, ids, reader, "refexp", report, {}, cache, rows, index)
        for who in out.split.stores["visual"].notes.get("no_overlap", []):
            report.add("candidate boxes overlapping no region (region 0's features used)", who)
    label = np.zeros((n, r_max), np.float32)
    for start in range(0, n, 4096):
        rows_ = slice(start, min(n, start + 4096))
        boxes, mask = out.split.column("boxes", rows_), out.split.column("region_mask", rows_)
        for j, i in enumerate(range(rows_.start, rows_.stop)):
            iou_t = box_iou(boxes[j], target[i])[:, 0] * mask[j]
            label[i] = np.where(iou_t >= iou_threshold, iou_t, 0.0)
    out.split.arrays.update(label=label, target_box=target)
    out.meta["target_recall"] = float((label.max(axis=1) > 0).mean()) if n else 0.0
    return out


def assemble_pairs(records: Sequence[PairRecord], visual, max_regions: int = 36, *, missing: str = "fail",
                   cache: StoreCache | None = None) -> Assembled:
    """NLVR2 → K = 2 views (``visual_index`` and ``image_id`` ``[N, 2]``: batches hold ``[B, 2, ...]``
    visual arrays), ``label`` int64 ``[N]`` (1 true, 0 false)."""
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: tuple(r.image_ids), lambda r: f"pair {r.id}", missing)
    for r in kept:
        if len(r.image_ids) != 2 or r.label not in (0, 1):
            raise DataError(f"pair {r.id}: needs 2 images and label 0 or 1, got {r.image_ids}, {r.label!r}",
                            r.source or None)
    keys = np.empty((len(kept), 2), object)
    for i, r in enumerate(kept):
        keys[i, 0], keys[i, 1] = r.image_ids
    label = np.array([r.label for r in kept], dtype=np.int64)
    return _finish(kept, keys, [r.statement for r in kept], [r.id for r in kept], reader, "nlvr", report,
                   {"label": label}, cache)


def assemble_entailment(records: Sequence[EntailRecord], visual, max_regions: int = 36, *,
                        missing: str = "fail", cache: StoreCache | None = None) -> Assembled:
    """SNLI-VE → ``label`` int64 ``[N]`` (0 entailment, 1 neutral, 2 contradiction)."""
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"pair {r.id}", missing)
    for r in kept:
        if r.label not in (0, 1, 2):
            raise DataError(f"pair {r.id}: label must be 0, 1 or 2, got {r.label!r}", r.source or None)
    label = np.array([r.label for r in kept], dtype=np.int64)
    return _finish(kept, _keys([r.image_id for r in kept]), [r.hypothesis for r in kept], [r.id for r in kept],
                   reader, "snli-ve", report, {"label": label}, cache)


# ----------------------------------------------------------------------------------- retrieval
def descriptors(store: VisualStore, chunk: int = 4096) -> np.ndarray:
    """What hard negatives are ranked by, float32 ``[M, D]`` per store row: the mean of the row's
    real region features (its first ``max_regions``), or for pixels the image mean-pooled on a
    4 x 4 grid per channel (48 values). Read in chunks of ``chunk`` rows."""
    out = []
    for start in range(0, len(store), chunk):
        rows = np.arange(start, min(len(store), start + chunk))
        if "regions" in store:
            got = store.take(rows, keys=("regions", "region_mask"))
            real = got["region_mask"][..., None]
            total = (got["regions"].astype(np.float32) * real).sum(axis=1)
            out.append(total / np.maximum(real.sum(axis=1), 1))
            continue
        img = store.take(rows, keys=("image",))["image"].astype(np.float32)  # [c, 3, S, S]
        edges = np.linspace(0, img.shape[-1], 5).astype(int)[:-1]
        sums = np.add.reduceat(np.add.reduceat(img, edges, axis=2), edges, axis=3)
        counts = np.diff(np.append(edges, img.shape[-1]))
        out.append((sums / np.outer(counts, counts)).reshape(len(rows), -1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)


def pick_hard_negatives(desc: np.ndarray, k: int, *, pool: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices int64 ``[M, k]``: for each row of ``desc`` ``[M, D]`` the ``k`` other rows of highest
    cosine similarity (most similar first, ties by lower index), never the row itself. With ``pool``
    > ``k``, ``k`` of the ``pool`` most similar are drawn (seeded, kept in similarity order)."""
    m = len(desc)
    if k < 1 or m < k + 1:
        raise ValueError(f"{k} hard negative(s) per image need at least {k + 1} distinct images, got {m}")
    pool = min(max(pool or k, k), m - 1)
    x = np.asarray(desc, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    out = np.empty((m, k), dtype=np.int64)
    block = max(1, min(1024, (1 << 25) // m))
    for start in range(0, m, block):
        stop = min(m, start + block)
        sims = x[start:stop] @ x.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = np.argpartition(-sims, pool - 1, axis=1)[:, :pool]
        kth = np.take_along_axis(sims, top, axis=1).min(axis=1)
        for i in np.flatnonzero((sims >= kth[:, None]).sum(axis=1) > pool):  # a tie at the cut: lowest index wins
            tied = np.flatnonzero(sims[i] >= kth[i])
            top[i] = tied[np.lexsort((tied, -sims[i, tied]))[:pool]]
        order = np.lexsort((top, -np.take_along_axis(sims, top, axis=1)), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        if pool > k:
            pick = np.sort(rng.random((stop - start, pool)).argsort(axis=1)[:, :k], axis=1)
            top = np.take_along_axis(top, pick, axis=1)
        out[start:stop] = top[:, :k]
    return out


def assemble_retrieval(records: Sequence[CaptionRecord], visual, split: str, max_regions: int = 36, *,
                       candidates: int = 12, missing: str = "fail", cache: StoreCache | None = None) -> Assembled:
    """Caption-image retrieval, one row per caption, ``label`` int64 ``[N]`` all 0, ``image_id`` and
    ``visual_index`` int64 ``[N]`` (the caption's image in the store of the split's distinct images).

    ``split="train"`` adds each caption's hard candidates, which training draws its negatives from
    (:mod:`cotrain.data.negatives`): ``candidate_index`` int64 ``[N, C]`` (store rows) and
    ``candidate_id`` int64 ``[N, C]`` (their image ids), the C = ``candidates`` (at most the other
    images of the split) images most similar to the caption's (:func:`pick_hard_negatives` on
    :func:`descriptors` of the stored features, most similar first), chosen once per image and the
    same for all its captions - deterministic for the same records and store. ``val`` / ``test``: the
    split's distinct ``image_id`` are the retrieval pool. ``records`` are the captions of that one
    split (``split`` picks the layout, it filters nothing). ``meta["ids"]`` holds each row's index in
    ``records``; ``meta["candidates"]`` maps each train image key to its candidates' keys."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; use train, val or test")
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"caption of image {r.image_id}", missing)
    position = {id(r): i for i, r in enumerate(records)}
    texts, ids = [r.caption for r in kept], [position[id(r)] for r in kept]  # captions have no id: their index
    label = np.zeros(len(kept), dtype=np.int64)
    captions = _keys([r.image_id for r in kept])
    if split != "train":
        return _finish(kept, captions, texts, ids, reader, "retrieval", report, {"label": label}, cache)
    rows, own = image_rows(captions)  # the store: the split's distinct images; own: each caption's row
    if len(rows) < 2:
        raise DataError(f"a retrieval train split needs at least 2 distinct images to draw negatives from, got "
                        f"{len(rows)}", kept[0].source if kept else None)
    store = build_visual_store(reader, rows, cache)
    cand = pick_hard_negatives(descriptors(store), min(candidates, len(rows) - 1))  # [M, C]
    images = [normalize_image_key(row.key) for row in rows]
    row_ids = np.array([image_id_int(key) for key in images], dtype=np.int64)
    extra = {"label": label, "candidate_index": cand[own], "candidate_id": row_ids[cand[own]]}
    out = _finish(kept, captions, texts, ids, reader, "retrieval", report, extra, cache, rows, own, store)
    out.meta["candidates"] = {key: [images[j] for j in cand[i]] for i, key in enumerate(images)}
    return out


def assemble_captions(records: Sequence[CaptionRecord], visual, max_regions: int = 36, *, missing: str = "fail",
                      cache: StoreCache | None = None) -> Assembled:
    """Caption pretraining (Conceptual Captions; COCO / Flickr30k captions read for a ``pretrain``
    head): one row per caption with its own image - ``image_id`` and ``visual_index`` ``[N]``, the
    split's distinct images stored once - and no ``label`` (the pretraining objectives make their
    own targets). ``meta["ids"]`` holds each row's index in ``records``."""
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"caption of image {r.image_id!r}",
                         missing)
    position = {id(r): i for i, r in enumerate(records)}
    return _finish(kept, _keys([r.image_id for r in kept]), [r.caption for r in kept],
                   [position[id(r)] for r in kept], reader, "pretrain", report, {}, cache)
