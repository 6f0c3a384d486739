"""Records + region features (or images) → the arrays of one split, as ``docs/vl-contract.md`` fixes.

``visual`` is a region store (:class:`~cotrain.data.formats.vl.regions.NpzRegionStore`,
:class:`~cotrain.data.formats.vl.regions.TsvRegionStore` or anything with ``get(key) ->
RegionFeatures`` and ``in``) or an :class:`~cotrain.data.formats.vl.images.ImageFolderStore`:

- region store → ``regions`` float32 ``[N, (K,) R, F]``, ``boxes`` float32 ``[N, (K,) R, 4]``
  (normalised by each image's own width / height) and ``region_mask`` bool ``[N, (K,) R]``: the
  first ``max_regions`` regions of the image, zero-padded;
- image store → ``image`` uint8 ``[N, (K,) 3, S, S]``.

Every assembler also gives ``text_raw`` str ``[N]`` and ``image_id`` int64 ``[N]`` / ``[N, K]``:
integer keys (and all-digit strings) keep their value, any other key (GQA's ``n161313``, NLVR2's
``train-10171-0-img0``) becomes ``2**62 + blake2b(key) mod 2**62`` - the same in every split and
run, so a clean-split check can compare ids across splits. ``meta["image_keys"]`` maps every id of
the split back to its key; ``meta["ids"]`` lists the record ids in row order.

A record whose image is missing from ``visual`` raises :class:`MissingImageError` naming the record
and the image with ``missing="fail"``; with ``missing="skip"`` it is left out and counted in the
returned :class:`ReadReport`. Each assembler returns :class:`Assembled` ``(arrays, report, meta)``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, NamedTuple, Sequence

import numpy as np

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.formats.vl.records import (
    CaptionRecord, EntailRecord, ImageKey, MissingImageError, PairRecord, ReadReport, RefRecord, VQARecord,
    normalize_image_key,
)
from cotrain.data.formats.vl.regions import RegionFeatures
from cotrain.data.formats.vl.vqa import encode_answers, soft_scores
from cotrain.metrics.vqa_types import answer_type_of

_HASH_BASE = 1 << 62


class Assembled(NamedTuple):
    arrays: dict[str, np.ndarray]
    report: ReadReport
    meta: dict


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


class _Reader:
    """The visual store with a small LRU cache (records of one image are usually adjacent)."""

    def __init__(self, visual, max_regions: int, cache: int = 256) -> None:
        self.visual = visual
        self.is_image = isinstance(visual, ImageFolderStore)
        if not self.is_image and (max_regions is None or max_regions <= 0):
            raise ValueError(f"max_regions must be positive, got {max_regions!r}")
        self.max_regions = int(max_regions or 0)
        self._cache: OrderedDict = OrderedDict()
        self._size = cache

    def __contains__(self, key) -> bool:
        return key in self.visual

    def get(self, key):
        k = normalize_image_key(key)
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        value = self.visual.get(key)
        self._cache[k] = value
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value

    def size(self, key) -> tuple[int, int]:
        v = self.get(key)
        return v[1] if self.is_image else (v.width, v.height)


def _keep(records, reader: _Reader, keys_of: Callable, name_of: Callable, missing: str) -> tuple[list, ReadReport]:
    if missing not in ("fail", "skip"):
        raise ValueError(f"missing must be 'fail' or 'skip', got {missing!r}")
    kept, report = [], ReadReport()
    for r in records:
        absent = [k for k in keys_of(r) if k not in reader]
        if not absent:
            kept.append(r)
        elif missing == "fail":
            raise MissingImageError(f"{name_of(r)}: image {absent[0]!r} not found in {reader.visual!r}",
                                    r.source or None)
        else:
            report.add("records whose image is missing", f"{name_of(r)} (image {absent[0]!r})")
    return kept, report


def _merge(into: ReadReport, other: ReadReport) -> ReadReport:
    for reason, n in other.skipped.items():
        into.skipped[reason] = into.skipped.get(reason, 0) + n
        into.examples.setdefault(reason, []).extend(other.examples[reason][: 5 - len(into.examples.get(reason, []))])
    return into


def _visual_arrays(reader: _Reader, keys: np.ndarray) -> tuple[dict[str, np.ndarray], int | None]:
    """Visual arrays for an object array of keys ``[N]`` or ``[N, K]``; also F (None for images)."""
    flat = keys.reshape(-1)
    if reader.is_image:
        s = reader.visual.image_size
        out = np.zeros((len(flat), 3, s, s), dtype=np.uint8)
        for i, key in enumerate(flat):
            out[i] = reader.get(key)[0]
        return {"image": out.reshape(*keys.shape, 3, s, s)}, None
    r = reader.max_regions
    dim = reader.get(flat[0]).features.shape[1] if len(flat) else 0
    feats = np.zeros((len(flat), r, dim), dtype=np.float32)
    boxes = np.zeros((len(flat), r, 4), dtype=np.float32)
    mask = np.zeros((len(flat), r), dtype=bool)
    for i, key in enumerate(flat):
        rf: RegionFeatures = reader.get(key)
        if rf.features.shape[1] != dim:
            got = rf.features.shape[1]
            where = repr(reader.visual)
            raise DataError(f"image {key!r}: feature size {got} differs from {dim} (image {flat[0]!r})", where)
        n = min(r, rf.num_regions)
        feats[i, :n], boxes[i, :n], mask[i, :n] = rf.features[:n], rf.boxes[:n], True
    shape = keys.shape
    return {"regions": feats.reshape(*shape, r, dim), "boxes": boxes.reshape(*shape, r, 4),
            "region_mask": mask.reshape(*shape, r)}, dim


def _finish(kept, keys: np.ndarray, texts, ids, reader: _Reader, head_type: str, report, extra: dict) -> Assembled:
    visual, dim = _visual_arrays(reader, keys)
    image_id, table = _image_ids(keys)
    arrays = {"text_raw": np.array(texts, dtype=np.str_).reshape(len(kept)), "image_id": image_id, **visual, **extra}
    meta = {"head_type": head_type, "ids": list(ids), "image_keys": table, "region_dim": dim,
            "max_regions": None if reader.is_image else reader.max_regions,
            "image_size": reader.visual.image_size if reader.is_image else None}
    return Assembled(arrays, report, meta)


def _keys(keys: list) -> np.ndarray:
    """Image keys → object array ``[N]`` (keys of mixed types kept as they are)."""
    out = np.empty(len(keys), dtype=object)
    for i, key in enumerate(keys):
        out[i] = key
    return out


# ----------------------------------------------------------------------------------- assemblers
def assemble_vqa(records: Sequence[VQARecord], visual, vocab: Sequence[str], max_regions: int = 36, *,
                 missing: str = "fail") -> Assembled:
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
                  reader, "vqa", _merge(report, answer_report), extra)
    out.meta["class_names"] = list(vocab)
    return out


def assemble_refexp(records: Sequence[RefRecord], visual, max_regions: int = 36, *, missing: str = "fail",
                    iou_threshold: float = 0.5) -> Assembled:
    """Referring expressions → ``label`` float32 ``[N, R]`` (IoU of each proposal with the referred
    box where ≥ ``iou_threshold``, else 0) and ``target_box`` float32 ``[N, 4]`` (normalised by the
    record's ``image_size``, else the store's image size).

    Proposals: without ``candidates``, the store's first ``max_regions`` regions. With candidates
    (Visual7W pointing, GuessWhat) the candidates are the proposals (``boxes``, ``region_mask``);
    with a region store each candidate takes the features of the store region (any of them, not only
    the first ``max_regions``) with the highest IoU with it - a candidate overlapping no region takes
    region 0's and is counted in the report. An image store needs candidates (it has no proposals).
    """
    reader = _Reader(visual, max_regions)
    name = lambda r: f"ref {r.ref_id}"  # noqa: E731
    for r in records:
        if reader.is_image and not r.candidates:
            raise DataError(f"{name(r)}: no candidate boxes, and an image store has no proposals; use a region store",
                            r.source or None)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), name, missing)
    out = _finish(kept, _keys([r.image_id for r in kept]), [r.expression for r in kept], [r.ref_id for r in kept],
                  reader, "refexp", report, {})  # the store's regions as proposals; candidates replace them below
    n, r_max = len(kept), max_regions
    if reader.is_image:  # candidates define the proposals; no features
        out.arrays["boxes"] = np.zeros((n, r_max, 4), np.float32)
        out.arrays["region_mask"] = np.zeros((n, r_max), bool)
        out.meta["max_regions"] = r_max
    label, target = np.zeros((n, r_max), np.float32), np.zeros((n, 4), np.float32)
    for i, r in enumerate(kept):
        frame = tuple(r.image_size) if r.image_size else reader.size(r.image_id)
        target[i] = _normalise(r.box, frame, name(r), r.source)[0]
        if r.candidates:
            if len(r.candidates) > r_max:
                report.add(f"candidates beyond max_regions={r_max} dropped", name(r))
            cands = _normalise(r.candidates[:r_max], frame, name(r), r.source)
            c = len(cands)
            out.arrays["boxes"][i] = 0
            out.arrays["boxes"][i, :c] = cands
            out.arrays["region_mask"][i] = np.arange(r_max) < c
            if not reader.is_image:
                rf: RegionFeatures = reader.get(r.image_id)
                iou = box_iou(cands, rf.boxes)
                if (iou.max(axis=1) <= 0).any():
                    report.add("candidate boxes overlapping no region (region 0's features used)", name(r))
                out.arrays["regions"][i] = 0
                out.arrays["regions"][i, :c] = rf.features[iou.argmax(axis=1)]
        iou_t = box_iou(out.arrays["boxes"][i], target[i])[:, 0] * out.arrays["region_mask"][i]
        label[i] = np.where(iou_t >= iou_threshold, iou_t, 0.0)
    out.arrays.update(label=label, target_box=target)
    out.meta["target_recall"] = float((label.max(axis=1) > 0).mean()) if n else 0.0
    return out


def assemble_pairs(records: Sequence[PairRecord], visual, max_regions: int = 36, *, missing: str = "fail") -> Assembled:
    """NLVR2 → K = 2 views (visual arrays ``[N, 2, ...]``, ``image_id`` ``[N, 2]``), ``label``
    int64 ``[N]`` (1 true, 0 false)."""
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
                   {"label": label})


def assemble_entailment(records: Sequence[EntailRecord], visual, max_regions: int = 36, *,
                        missing: str = "fail") -> Assembled:
    """SNLI-VE → ``label`` int64 ``[N]`` (0 entailment, 1 neutral, 2 contradiction)."""
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"pair {r.id}", missing)
    for r in kept:
        if r.label not in (0, 1, 2):
            raise DataError(f"pair {r.id}: label must be 0, 1 or 2, got {r.label!r}", r.source or None)
    label = np.array([r.label for r in kept], dtype=np.int64)
    return _finish(kept, _keys([r.image_id for r in kept]), [r.hypothesis for r in kept], [r.id for r in kept],
                   reader, "snli-ve", report, {"label": label})


# ----------------------------------------------------------------------------------- retrieval
def _descriptor(reader: _Reader, key) -> np.ndarray:
    """What hard negatives are ranked by: the mean of the image's first ``max_regions`` region
    features, or for an image store its pixels mean-pooled on a 4 x 4 grid (48 values)."""
    if not reader.is_image:
        rf: RegionFeatures = reader.get(key)
        return rf.features[: reader.max_regions].mean(axis=0)
    img = reader.get(key)[0].astype(np.float32)
    edges = np.linspace(0, img.shape[-1], 5).astype(int)[:-1]
    sums = np.add.reduceat(np.add.reduceat(img, edges, axis=1), edges, axis=2)
    counts = np.diff(np.append(edges, img.shape[-1]))
    return (sums / np.outer(counts, counts)).reshape(-1)


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
                       hard_negatives: int = 3, pool: int | None = None, seed: int = 0,
                       missing: str = "fail") -> Assembled:
    """Caption-image retrieval, one row per caption, ``label`` int64 ``[N]`` all 0.

    ``split="train"``: K = 1 + ``hard_negatives`` views (visual arrays ``[N, K, ...]``,
    ``image_id`` ``[N, K]``): view 0 the caption's image, then the images of the split most similar
    to it (:func:`pick_hard_negatives` on :func:`_descriptor`), chosen once per image and identical for
    all its captions - deterministic for the same records, store and seed. ``val`` / ``test``: no
    K; the split's distinct ``image_id`` are the retrieval pool. ``records`` are the captions of that
    one split (``split`` picks the layout, it filters nothing). ``meta["ids"]`` holds each row's
    index in ``records``; ``meta["hard_negatives"]`` maps each train image key to its negatives' keys."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; use train, val or test")
    reader = _Reader(visual, max_regions)
    kept, report = _keep(records, reader, lambda r: (r.image_id,), lambda r: f"caption of image {r.image_id}", missing)
    position = {id(r): i for i, r in enumerate(records)}
    texts, ids = [r.caption for r in kept], [position[id(r)] for r in kept]  # captions have no id: their index
    label = np.zeros(len(kept), dtype=np.int64)
    if split != "train":
        return _finish(kept, _keys([r.image_id for r in kept]), texts, ids, reader, "retrieval", report,
                       {"label": label})
    images = list(dict.fromkeys(normalize_image_key(r.image_id) for r in kept))
    row = {key: i for i, key in enumerate(images)}
    desc = np.stack([_descriptor(reader, key) for key in images]) if images else np.zeros((0, 1), np.float32)
    neg = pick_hard_negatives(desc, hard_negatives, pool=pool, seed=seed)
    keys = np.empty((len(kept), 1 + hard_negatives), dtype=object)
    for i, r in enumerate(kept):
        keys[i, 0] = r.image_id
        keys[i, 1:] = [images[j] for j in neg[row[normalize_image_key(r.image_id)]]]
    out = _finish(kept, keys, texts, ids, reader, "retrieval", report, {"label": label})
    out.meta["hard_negatives"] = {key: [images[j] for j in neg[i]] for i, key in enumerate(images)}
    return out
