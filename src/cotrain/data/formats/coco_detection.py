"""COCO object detection (``source.kind: coco_detection``): instances JSON + an image folder →
the detection split layout that the data layer and the detection head share (below).

``files`` names one COCO instances file per split, role ``instances``
(``{train: {instances: instances_train2017.json}, val: {instances: instances_val2017.json}}``);
a val or test split without a file is carved out of train **by image**, ``val_fraction`` /
``test_fraction`` of the train images, seeded (:func:`cotrain.data.formats.vl.splits.carve_by_image`,
as the V&L sources carve), and reported on one line. A fraction other than its default (0.1) set
for a split that has its own file is an error: it would do nothing.

Images: ``images`` is the folder holding each image's ``file_name``, or the parent of COCO's
``train2017/`` ``val2017/`` folders: for ``instances_<name>.json`` the sub-folder ``<name>`` is used
when it exists. Every image is decoded by :func:`cotrain.data.media.load_image_with_size` (EXIF
rotation, RGB, resized - not cropped - to ``image_size`` square), stored once in the split's
visual store (in memory, or memory-mapped under the store cache when large: see
:mod:`cotrain.data.formats.vl.visual_store`), and its decoded size must equal the JSON's
``width`` x ``height``. Images without annotations are kept (no boxes). A missing image file fails
naming the path tried (``missing: fail``) or is skipped and reported (``missing: skip``).

Split arrays (N images, n_i boxes of image i; a batch holds each Ragged as a list of B tensors):

- ``image`` uint8 ``[N, 3, S, S]`` - in the store ``"visual"``, gathered through ``visual_index``
  int64 ``[N]`` (read it with ``Split.column("image")`` / ``Split.take``, not ``Split.arrays``);
- ``target_boxes`` Ragged float32 ``[n_i, 4]``: normalised ``(cx, cy, w, h)`` in [0, 1] of the
  original image (unchanged by the resize);
- ``target_classes`` Ragged int64 ``[n_i]``: contiguous class index; ``meta["category_ids"]``
  maps it back to the COCO category id (categories sorted by id; ``class_names`` their names);
- ``target_iscrowd`` Ragged bool ``[n_i]``: crowd regions (kept for evaluation, left out of the
  training loss by the criterion);
- ``target_area`` Ragged float32 ``[n_i]``: the annotation's ``area`` in original pixels (the
  segmentation area COCOeval sorts objects into small / medium / large by; the box area when absent);
- ``orig_size`` int64 ``[N, 2]``: ``(height, width)`` of the original image; ``image_id`` int64 ``[N]``: COCO's id.

Bad input: a box that leaves its image or has a non-positive width / height is clipped to the image
(``bad_boxes: clip``; dropped when nothing is left) and reported on one line with the annotation
ids (all of them in ``meta["bad_boxes"]``), or fails naming the annotation id and file
(``bad_boxes: fail``). An annotation naming an image or category id the file does not have always
fails, naming the annotation id, the missing id and the file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cotrain.data.arrays import Split, TaskData
from cotrain.data.errors import DataError
from cotrain.data.formats.vl._parse import get, load_json, number
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.formats.vl.records import ReadReport
from cotrain.data.ragged import Ragged

SPLITS = ("train", "val", "test")
ROLES = ("instances",)
HEAD_TYPE = "detect"
BAD_BOXES = ("clip", "fail")
SHOWN_IDS = 10  # annotation ids a one-line report lists


@dataclass
class DetRecord:
    """One image of a COCO instances file with its (checked) boxes."""

    image_id: int
    file_name: str
    width: int
    height: int
    boxes: np.ndarray  # float32 [n, 4] normalised (cx, cy, w, h)
    classes: np.ndarray  # int64 [n] contiguous class index
    iscrowd: np.ndarray  # bool [n]
    area: np.ndarray  # float32 [n] in original pixels
    ann_ids: np.ndarray  # int64 [n]
    split: str | None = None
    source: str = ""


@dataclass
class CocoInstances:
    """A parsed instances file: its images (file order), categories (sorted by id) and what was clipped."""

    path: Path
    records: list[DetRecord]
    category_ids: list[int]
    class_names: list[str]
    clipped: list[int]  # annotation ids whose box was clipped to the image
    dropped: list[int]  # annotation ids whose box had nothing left inside the image


def _categories(cats: object, p: Path) -> tuple[list[int], list[str]]:
    if not isinstance(cats, list) or not cats:
        raise DataError("'categories' must be a non-empty list of {id, name}", p)
    found: dict[int, str] = {}
    for i, c in enumerate(cats):
        cid = get(c, "id", p, f"categories[{i}]", int)
        if cid in found:
            raise DataError(f"categories[{i}]: category id {cid} appears twice", p)
        found[cid] = str(get(c, "name", p, f"categories[{i}] (id {cid})", str))
    ids = sorted(found)
    return ids, [found[c] for c in ids]


def _images(images: object, p: Path) -> dict[int, tuple[str, int, int]]:
    if not isinstance(images, list):
        raise DataError("'images' must be a list of {id, file_name, width, height}", p)
    out: dict[int, tuple[str, int, int]] = {}
    for i, im in enumerate(images):
        iid = get(im, "id", p, f"images[{i}]", int)
        where = f"images[{i}] (id {iid})"
        if iid in out:
            raise DataError(f"{where}: image id {iid} appears twice", p)
        w, h = get(im, "width", p, where, int), get(im, "height", p, where, int)
        if w <= 0 or h <= 0:
            raise DataError(f"{where}: width and height must be positive, got {w}x{h}", p)
        out[iid] = (get(im, "file_name", p, where, str), w, h)
    return out


def _box(ann: dict, p: Path, where: str) -> tuple[float, float, float, float]:
    box = get(ann, "bbox", p, where, list)
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise DataError(f"{where}: field 'bbox' must be [x, y, width, height] (4 numbers), got {box!r:.60}", p)
    return tuple(float(v) for v in box)


def read_coco_instances(path: str | os.PathLike, *, bad_boxes: str = "clip") -> CocoInstances:
    """Parse and check one COCO instances JSON (see the module docstring); no image is read."""
    if bad_boxes not in BAD_BOXES:
        raise ValueError(f"bad_boxes must be one of {BAD_BOXES}, got {bad_boxes!r}")
    p = Path(path).expanduser()
    doc = load_json(p, "COCO instances JSON")
    if not isinstance(doc, dict):
        raise DataError(f"expected a COCO instances object (images, annotations, categories), got {type(doc).__name__}", p)
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            hint = " (an image_info file? COCO's test images have no public annotations)" if key == "annotations" else ""
            raise DataError(f"no {key!r} list: not a COCO instances file{hint}", p)
    category_ids, class_names = _categories(doc["categories"], p)
    class_of = {c: i for i, c in enumerate(category_ids)}
    images = _images(doc["images"], p)
    anns = doc["annotations"]
    if not isinstance(anns, list):
        raise DataError("'annotations' must be a list", p)
    per: dict[int, list] = {iid: [] for iid in images}
    clipped, dropped, seen = [], [], set()
    for i, ann in enumerate(anns):
        aid = get(ann, "id", p, f"annotations[{i}]", int)
        where = f"annotation {aid}"
        if aid in seen:
            raise DataError(f"{where}: annotation id {aid} appears twice", p)
        seen.add(aid)
        iid, cid = get(ann, "image_id", p, where, int), get(ann, "category_id", p, where, int)
        if iid not in images:
            raise DataError(f"{where}: image_id {iid} is not among the file's {len(images)} images", p)
        if cid not in class_of:
            raise DataError(f"{where}: category_id {cid} is not among the file's categories "
                            f"(ids {category_ids[:12]}{' ...' if len(category_ids) > 12 else ''})", p)
        x, y, w, h = _box(ann, p, where)
        _, W, H = images[iid]
        x0, y0, x1, y1 = x, y, x + w, y + h
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            if bad_boxes == "fail":
                what = "has a non-positive width or height" if w <= 0 or h <= 0 else f"leaves its {W}x{H} image"
                raise DataError(f"{where} (image {iid}): bbox {[x, y, w, h]} {what}; source.bad_boxes: clip clips "
                                "such boxes to the image", p)
            x0, x1 = min(max(x0, 0.0), W), min(max(x1, 0.0), W)
            y0, y1 = min(max(y0, 0.0), H), min(max(y1, 0.0), H)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                dropped.append(aid)
                continue
            clipped.append(aid)
        area = number(ann, "area", p, where) if ann.get("area") is not None else (x1 - x0) * (y1 - y0)
        crowd = get(ann, "iscrowd", p, where, (int, bool), default=0)
        per[iid].append((((x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H),
                         class_of[cid], bool(crowd), area, aid))
    records = []
    for iid, (file_name, W, H) in images.items():
        a = per[iid]
        records.append(DetRecord(
            iid, file_name, W, H, np.asarray([t[0] for t in a], np.float32).reshape(len(a), 4),
            np.asarray([t[1] for t in a], np.int64), np.asarray([t[2] for t in a], bool),
            np.asarray([t[3] for t in a], np.float32), np.asarray([t[4] for t in a], np.int64), source=str(p)))
    return CocoInstances(p, records, category_ids, class_names, clipped, dropped)


class CocoImages(ImageFolderStore):
    """The images of one instances file: ``folder / file_name``, decoded as every image source does,
    and checked to have the size the JSON gives (boxes are relative to it)."""

    def __init__(self, folder: Path, image_size: int, sizes: dict[str, tuple[int, int]], source: Path) -> None:
        super().__init__(folder, image_size, pattern="{}")
        self.sizes, self.source = sizes, source

    def get(self, key):
        pixels, size = super().get(key)
        want = self.sizes.get(key)
        if want is not None and tuple(size) != tuple(want):
            raise DataError(f"image is {size[0]}x{size[1]} pixels (after EXIF rotation) but {self.source.name} gives "
                            f"{want[0]}x{want[1]}: its boxes would not fit", self.folder / key)
        return pixels, size


def image_folder_for(images: str | os.PathLike, instances: Path) -> Path:
    """``images/<name>`` for ``instances_<name>.json`` when that folder exists, else ``images``."""
    root = Path(images).expanduser()
    sub = instances.name.split(".")[0].removeprefix("instances_")
    return root / sub if sub and (root / sub).is_dir() else root


def _check_files(files: dict) -> None:
    bad = sorted(set(files) - set(SPLITS))
    if bad:
        raise DataError(f"source.files has split keys {bad}; a coco_detection source takes one instances file per "
                        "split: train, val, test")
    for split, roles in files.items():
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or "instances" not in roles:
            raise DataError(f"source.files.{split} must name the role 'instances' only (got {sorted(roles)})")
    if "train" not in files:
        raise DataError("source.files needs a train instances file (val / test can be carved from train, not train "
                        "from them)")


def _carve(per: dict[str, list], val_fraction: float, test_fraction: float, seed: int, name: str) -> dict[str, list]:
    from cotrain.data.formats.vl.splits import carve_by_image

    missing = [s for s in ("val", "test") if per.get(s) is None]
    for s, value in (("val", val_fraction), ("test", test_fraction)):
        if s not in missing and value != 0.1:
            raise DataError(f"task {name!r}: source.{s}_fraction = {value} has no effect: the {s} split comes from "
                            f"source.files.{s} (a split's own file wins over a fraction); drop one of them")
    if not missing:
        return per
    fraction = {s: (val_fraction if s == "val" else test_fraction) if s in missing else 0.0 for s in ("val", "test")}
    carved = carve_by_image(per["train"], val_fraction=fraction["val"], test_fraction=fraction["test"], seed=seed)
    for s in missing:
        if not carved.records[s]:
            raise DataError(f"task {name!r}: no {s} instances file, and {s}_fraction {fraction[s]} of the "
                            f"{len(per['train'])} train images carves no {s} split; give a {s} file, a positive "
                            f"{s}_fraction or more images")
    parts = [f"{s} {len(carved.records[s])} images ({s}_fraction {fraction[s]})" for s in missing]
    print(f"[cotrain] {name}: carved from train by image (seed {seed}): {', '.join(parts)}; train keeps "
          f"{len(carved.records['train'])} images", file=sys.stderr)
    return {**per, "train": carved.records["train"], **{s: carved.records[s] for s in missing}}


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:SHOWN_IDS])) + (", ..." if len(ids) > SHOWN_IDS else "")


def _assemble(records: list[DetRecord], visual: CocoImages, missing: str, cache, report: ReadReport) -> Split:
    from cotrain.data.formats.vl.visual_store import Reader, build_visual_store, image_rows

    kept = []
    for r in records:
        if r.file_name in visual:
            kept.append(r)
        elif missing == "fail":
            raise DataError(f"image file not found (image id {r.image_id} of {Path(r.source).name}; source.missing: "
                            "skip skips such images)", visual.folder / r.file_name)
        else:
            report.add("images without a file", visual.folder / r.file_name)
    keys = np.empty(len(kept), dtype=object)
    keys[:] = [r.file_name for r in kept]
    rows, index = image_rows(keys)
    store = build_visual_store(Reader(visual, 0), rows, cache)

    def ragged(attr: str, dtype, shape=()):
        return Ragged.from_rows([getattr(r, attr) for r in kept], dtype=dtype, row_shape=shape)

    arrays = {
        "visual_index": index, "target_boxes": ragged("boxes", np.float32, (4,)),
        "target_classes": ragged("classes", np.int64), "target_iscrowd": ragged("iscrowd", bool),
        "target_area": ragged("area", np.float32),
        "orig_size": np.asarray([(r.height, r.width) for r in kept], np.int64).reshape(len(kept), 2),
        "image_id": np.asarray([r.image_id for r in kept], np.int64),
    }
    return Split(arrays, {"visual": store})


def read_coco_detection(
    files: dict[str, dict[str, str]],
    images: str | os.PathLike,
    *,
    image_size: int,
    bad_boxes: str = "clip",
    missing: str = "fail",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    name: str = "coco_detection",
    cache=None,
) -> TaskData:
    """COCO instances files per split + the image folder → a detection TaskData (module docstring).

    ``cache``: a :class:`~cotrain.data.stores.StoreCache` for large visual stores (None: in memory)."""
    if missing not in ("fail", "skip"):
        raise ValueError(f"missing must be fail or skip, got {missing!r}")
    _check_files(files)
    parsed = {s: read_coco_instances(files[s]["instances"], bad_boxes=bad_boxes) for s in SPLITS if s in files}
    train = parsed["train"]
    for s, inst in parsed.items():
        if (inst.category_ids, inst.class_names) != (train.category_ids, train.class_names):
            raise DataError(f"the categories of {inst.path} differ from those of the train file {train.path}; "
                            "every split must use the same categories", inst.path)
    per = _carve({s: [dataclasses.replace(r, split=s) for r in inst.records] for s, inst in parsed.items()},
                 val_fraction, test_fraction, seed, name)
    bad = {s: {"clipped": inst.clipped, "dropped": inst.dropped} for s, inst in parsed.items()
           if inst.clipped or inst.dropped}
    for s, b in bad.items():
        print(f"[cotrain] {name}/{s}: {parsed[s].path.name}: {len(b['clipped'])} box(es) clipped to their image "
              f"(annotation ids {_ids(b['clipped']) or '-'}), {len(b['dropped'])} dropped with nothing inside it "
              f"(annotation ids {_ids(b['dropped']) or '-'})", file=sys.stderr)
    splits, skipped = {}, {}
    for s in SPLITS:
        inst = parsed.get(s, train)  # carved splits read their images where train's are
        recs = per[s]
        visual = CocoImages(image_folder_for(images, inst.path), image_size,
                            {r.file_name: (r.width, r.height) for r in recs}, inst.path)
        report = ReadReport()
        splits[s] = _assemble(recs, visual, missing, cache, report)
        if report.skipped:
            skipped[s] = report.summary()
            print(f"[cotrain] {name}/{s}: {report.summary()}", file=sys.stderr)
        if len(splits[s]) == 0:
            raise DataError(f"task {name!r}: no usable {s} images remain ({report.summary()})", inst.path)
    meta = {
        "head_type": HEAD_TYPE, "source_kind": "coco_detection", "category_ids": list(train.category_ids),
        "image_size": int(image_size), "files": {s: str(inst.path) for s, inst in parsed.items()},
        "bad_boxes": bad, "skipped": skipped,
    }
    return TaskData(name, list(train.class_names), splits["train"], splits["val"], splits["test"], meta=meta)


__all__ = ["BAD_BOXES", "CocoImages", "CocoInstances", "DetRecord", "HEAD_TYPE", "ROLES", "image_folder_for",
           "read_coco_detection", "read_coco_instances"]
