"""COCO detection mAP, computed by the official evaluator itself (pycocotools' ``COCO`` + ``COCOeval``).

:func:`coco_map` builds the ground-truth ``COCO`` object in memory (``COCO()``, ``dataset`` set,
``createIndex()``: no file is written), loads the detections with ``COCO.loadRes`` (a list of
``{image_id, category_id, bbox [x, y, w, h], score}``), runs ``evaluate`` / ``accumulate`` /
``summarize`` with pycocotools' default parameters (IoU .50:.05:.95, area ranges all / small /
medium / large, at most 1 / 10 / 100 detections per image and category) and returns its 12
summary numbers, named as in :data:`STAT_NAMES` (``AP`` = AP@[.50:.95], ``AP50``, ``AP75``,
``APs`` / ``APm`` / ``APl`` by object size, ``AR1`` / ``AR10`` / ``AR100``, ``ARs`` / ``ARm`` /
``ARl``). pycocotools' prints are silenced; its numbers are kept as they are, except:

- **-1 becomes 0.0.** COCOeval gives -1 for a figure it has nothing to average over - no
  ground-truth object in that size range (``APs`` of images without small objects), or no
  ground-truth object at all; we report 0.0 there, so that every value is a number in [0, 1].
- **No detections at all** (``loadRes`` cannot take an empty list): the result ``COCO`` object is
  built directly with no annotations and evaluated the same way, which gives AP 0.0.

Inputs (per image; arrays are NumPy arrays, torch tensors or lists):

- ground truth: ``{"image_id": int, "boxes": [n, 4] absolute (x0, y0, x1, y1) - or (x, y, w, h)
  with box_format="xywh" -, "labels": [n], "orig_size": (height, width), "iscrowd": [n] (optional,
  default all 0), "area": [n] (optional: the area COCOeval sorts objects by size with; default the
  box area)}``. Every evaluated image must be listed, also those without objects;
- detections: ``{"image_id": int, "boxes": [k, 4] absolute (x0, y0, x1, y1) in the original image,
  "scores": [k], "labels": [k]}``; an image may have none (k = 0, or no entry at all).

``labels`` are COCO category ids, or - with ``category_ids`` (``TaskData.meta["category_ids"]``:
contiguous class index → category id) - class indices mapped through it on both sides.
:func:`ground_truth_from_split` turns a detection split (normalised cxcywh ``target_boxes``,
``target_classes``, ``target_iscrowd``, ``target_area``, ``orig_size``, ``image_id``) into the
ground truth, with class indices as labels.
"""

from __future__ import annotations

import contextlib
import io
from typing import Mapping, Sequence

import numpy as np

from cotrain.errors import InputError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _np(x, dtype, name: str, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=dtype)
    if a.size == 0:
        a = a.reshape(0, *shape_tail)
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail:
        raise InputError(f"{name} must have shape [n{''.join(f', {d}' for d in shape_tail)}], got {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return a


def xyxy_to_xywh(boxes) -> np.ndarray:
    """``[n, 4]`` (x0, y0, x1, y1) → COCO's (x, y, width, height), float64."""
    b = _np(boxes, np.float64, "boxes", (4,))
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _mapper(category_ids: Sequence[int] | None):
    if category_ids is None:
        return lambda labels, where: [int(v) for v in labels]
    ids = [int(c) for c in category_ids]

    def to_ids(labels, where: str) -> list[int]:
        bad = sorted({int(v) for v in labels if not 0 <= int(v) < len(ids)})
        if bad:
            raise InputError(f"{where}: class indices {bad[:5]} outside 0..{len(ids) - 1} (category_ids has {len(ids)})")
        return [ids[int(v)] for v in labels]

    return to_ids


def coco_ground_truth(ground_truth: Sequence[Mapping], *, category_ids: Sequence[int] | None = None,
                      box_format: str = "xyxy"):
    """The pycocotools ``COCO`` object of ``ground_truth`` (see the module docstring), built in memory."""
    from pycocotools.coco import COCO

    if box_format not in ("xyxy", "xywh"):
        raise ValueError(f"box_format must be xyxy or xywh, got {box_format!r}")
    if not ground_truth:
        raise InputError("the ground truth lists no image")
    to_ids = _mapper(category_ids)
    images, anns, seen = [], [], set()
    for g in ground_truth:
        iid = int(g["image_id"])
        if iid in seen:
            raise InputError(f"ground truth: image {iid} is listed twice")
        seen.add(iid)
        h, w = (int(v) for v in _np(g["orig_size"], np.int64, f"image {iid}: orig_size"))
        images.append({"id": iid, "height": h, "width": w})
        boxes = _np(g["boxes"], np.float64, f"image {iid}: boxes", (4,))
        xywh = xyxy_to_xywh(boxes) if box_format == "xyxy" else boxes
        labels = to_ids(_np(g["labels"], np.int64, f"image {iid}: labels"), f"ground truth image {iid}")
        crowd, area = g.get("iscrowd"), g.get("area")
        crowd = np.zeros(len(xywh), np.int64) if crowd is None else _np(crowd, np.int64, f"image {iid}: iscrowd")
        area = xywh[:, 2] * xywh[:, 3] if area is None else _np(area, np.float64, f"image {iid}: area")
        if not len(labels) == len(crowd) == len(area) == len(xywh):
            raise InputError(f"ground truth image {iid}: {len(xywh)} boxes but {len(labels)} labels, "
                             f"{len(crowd)} iscrowd, {len(area)} areas")
        for box, label, c, a in zip(xywh, labels, crowd, area):
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": label, "bbox": [float(v) for v in box],
                         "area": float(a), "iscrowd": int(c)})
    cats = sorted({int(c) for c in category_ids} if category_ids is not None else {a["category_id"] for a in anns})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_results(detections: Sequence[Mapping], *, category_ids: Sequence[int] | None = None) -> list[dict]:
    """Detections as COCO's result list ``[{image_id, category_id, bbox [x, y, w, h], score}, ...]``."""
    to_ids = _mapper(category_ids)
    out = []
    for d in detections:
        iid = int(d["image_id"])
        xywh = xyxy_to_xywh(d["boxes"])
        scores = _np(d["scores"], np.float64, f"image {iid}: scores")
        labels = to_ids(_np(d["labels"], np.int64, f"image {iid}: labels"), f"detections of image {iid}")
        if not len(xywh) == len(scores) == len(labels):
            raise InputError(f"detections of image {iid}: {len(xywh)} boxes, {len(scores)} scores, {len(labels)} labels")
        out += [{"image_id": iid, "category_id": c, "bbox": [float(v) for v in b], "score": float(s)}
                for b, s, c in zip(xywh, scores, labels)]
    return out


def coco_map(detections: Sequence[Mapping], ground_truth: Sequence[Mapping], *,
             category_ids: Sequence[int] | None = None, box_format: str = "xyxy") -> dict[str, float]:
    """COCOeval's 12 bbox summary numbers ``{"AP", "AP50", "AP75", "APs", ..., "ARl"}`` (module docstring)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = coco_ground_truth(ground_truth, category_ids=category_ids, box_format=box_format)
    results = coco_results(detections, category_ids=category_ids)
    unknown = sorted({r["image_id"] for r in results} - set(gt.getImgIds()))
    if unknown:
        raise InputError(f"detections for image(s) {unknown[:5]} that the ground truth does not list")
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            dt = gt.loadRes(results)
        else:
            dt = COCO()
            dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                          "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: max(float(v), 0.0) for name, v in zip(STAT_NAMES, ev.stats)}


def ground_truth_from_split(split) -> list[dict]:
    """A detection :class:`~cotrain.data.arrays.Split` → the ground truth of :func:`coco_map`:
    absolute (x0, y0, x1, y1) boxes in the original image (``orig_size``), labels = class indices
    (pass ``category_ids`` to :func:`coco_map` for COCO's ids), ``iscrowd`` and ``area`` when the
    split has ``target_iscrowd`` / ``target_area``."""
    col = split.column
    boxes, classes = col("target_boxes"), col("target_classes")
    sizes, ids = np.asarray(col("orig_size")), np.asarray(col("image_id"))
    crowd = col("target_iscrowd") if "target_iscrowd" in split else None
    area = col("target_area") if "target_area" in split else None
    out = []
    for i in range(len(ids)):
        h, w = (int(v) for v in sizes[i])
        cx, cy, bw, bh = np.asarray(boxes.row(i), np.float64).reshape(-1, 4).T
        xyxy = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=1)
        out.append({"image_id": int(ids[i]), "boxes": xyxy, "labels": np.asarray(classes.row(i), np.int64),
                    "orig_size": (h, w), "iscrowd": None if crowd is None else np.asarray(crowd.row(i), np.int64),
                    "area": None if area is None else np.asarray(area.row(i), np.float64)})
    return out


__all__ = ["STAT_NAMES", "coco_ground_truth", "coco_map", "coco_results", "ground_truth_from_split", "xyxy_to_xywh"]
