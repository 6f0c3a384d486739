"""coco_map against pycocotools run directly, from JSON files as the official evaluation reads them."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

pytest.importorskip("pycocotools", reason="pycocotools (the official COCO evaluator) is not installed")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from cotrain.data.arrays import Split  # noqa: E402
from cotrain.data.ragged import Ragged  # noqa: E402
from cotrain.errors import InputError  # noqa: E402
from cotrain.metrics.detection import STAT_NAMES, coco_map, ground_truth_from_split, xyxy_to_xywh  # noqa: E402

CATS = [3, 7, 11]


def _scene(seed=0, n_images=6):
    """Ground truth (xyxy, COCO ids) with small / medium / large objects and a crowd box, and noisy
    detections with false positives; one image gets no detection."""
    rng = np.random.default_rng(seed)
    gt, dets = [], []
    for i in range(n_images):
        h, w = 480, 640
        n = int(rng.integers(1, 6))
        side = rng.choice([20.0, 60.0, 150.0], size=n)  # areas below 32^2, between, above 96^2
        x0 = rng.uniform(0, w - 160, n)
        y0 = rng.uniform(0, h - 160, n)
        boxes = np.stack([x0, y0, x0 + side * rng.uniform(0.8, 1.2, n), y0 + side], axis=1)
        labels = rng.choice(CATS, size=n)
        crowd = np.zeros(n, np.int64)
        if i == 2:
            crowd[0] = 1
        gt.append({"image_id": 100 + i, "boxes": boxes, "labels": labels, "orig_size": (h, w), "iscrowd": crowd})
        if i == 4:
            continue  # an image without detections
        jitter = rng.normal(0, 4, boxes.shape)
        fp = np.array([[10.0, 10.0, 90.0, 70.0]])
        dets.append({"image_id": 100 + i, "boxes": np.concatenate([boxes + jitter, fp]),
                     "scores": rng.uniform(0.1, 1.0, n + 1),
                     "labels": np.concatenate([np.where(rng.random(n) < 0.8, labels, CATS[0]), [CATS[1]]])})
    return gt, dets


def _official(gt, dets, tmp_path):
    """The evaluation as users run it: annotation and result JSON files, COCO(file), loadRes(file)."""
    images, anns = [], []
    for g in gt:
        images.append({"id": g["image_id"], "height": g["orig_size"][0], "width": g["orig_size"][1],
                       "file_name": f"{g['image_id']}.jpg"})
        for box, label, crowd in zip(g["boxes"], g["labels"], g["iscrowd"]):
            x0, y0, x1, y1 = (float(v) for v in box)
            anns.append({"id": len(anns) + 1, "image_id": g["image_id"], "category_id": int(label),
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": int(crowd)})
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                  "categories": [{"id": c, "name": f"c{c}"} for c in CATS]}))
    res = [{"image_id": d["image_id"], "category_id": int(c), "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                                                       float(b[3] - b[1])], "score": float(s)}
           for d in dets for b, s, c in zip(d["boxes"], d["scores"], d["labels"])]
    (tmp_path / "res.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(cg, cg.loadRes(str(tmp_path / "res.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_cocoeval_run_on_json_files(tmp_path, seed):
    gt, dets = _scene(seed)
    stats = _official(gt, dets, tmp_path)
    assert 0.05 < stats[0] < 0.95  # a non-trivial case
    ours = coco_map(dets, gt)
    assert list(ours) == list(STAT_NAMES)
    for name, value in zip(STAT_NAMES, stats):
        assert ours[name] == pytest.approx(max(value, 0.0), abs=1e-12), name


def test_xywh_ground_truth_and_torch_inputs_give_the_same_numbers():
    gt, dets = _scene(3)
    base = coco_map(dets, gt)
    gt_xywh = [{**g, "boxes": xyxy_to_xywh(g["boxes"])} for g in gt]
    dets_t = [{k: torch.as_tensor(v) if k != "image_id" else v for k, v in d.items()} for d in dets]
    assert coco_map(dets_t, gt_xywh, box_format="xywh") == pytest.approx(base)


def test_perfect_detections_give_one():
    gt, _ = _scene(2)
    gt = [{**g, "iscrowd": np.zeros(len(g["boxes"]), np.int64)} for g in gt]
    perfect = [{"image_id": g["image_id"], "boxes": g["boxes"], "scores": np.ones(len(g["boxes"])),
                "labels": g["labels"]} for g in gt]
    out = coco_map(perfect, gt)
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert out[name] == pytest.approx(1.0), name


def test_known_partial_cases():
    one = [{"image_id": 1, "boxes": [[0, 0, 200, 200], [300, 300, 500, 500]], "labels": [1, 1], "orig_size": (600, 600)}]
    # one of two objects found exactly: precision 1 up to recall 0.5 -> 51 of COCO's 101 recall points
    half = coco_map([{"image_id": 1, "boxes": [[0, 0, 200, 200]], "scores": [0.9], "labels": [1]}], one)
    assert half["AP"] == pytest.approx(51 / 101) and half["AP50"] == pytest.approx(51 / 101)
    assert half["AR100"] == pytest.approx(0.5)
    # one object, one box of IoU 0.62: a hit at IoU thresholds .50, .55, .60 only -> AP 3/10
    single = [{"image_id": 1, "boxes": [[0, 0, 200, 200]], "labels": [1], "orig_size": (600, 600)}]
    out = coco_map([{"image_id": 1, "boxes": [[0, 0, 200, 124]], "scores": [0.5], "labels": [1]}], single)
    assert out["AP"] == pytest.approx(0.3) and out["AP50"] == pytest.approx(1.0) and out["AP75"] == 0.0
    # COCOeval's -1 (no small or medium object to average over) is reported as 0.0
    assert out["APs"] == 0.0 and out["APm"] == 0.0 and out["APl"] == pytest.approx(0.3)


def test_no_detections_at_all_give_zero():
    gt, _ = _scene(0)
    out = coco_map([], gt)
    assert out == {name: 0.0 for name in STAT_NAMES}
    empty = [{"image_id": g["image_id"], "boxes": np.zeros((0, 4)), "scores": [], "labels": []} for g in gt]
    assert coco_map(empty, gt) == out


def test_category_ids_map_class_indices_on_both_sides():
    gt, dets = _scene(4)
    index = {c: i for i, c in enumerate(CATS)}
    as_index = lambda items: [{**x, "labels": [index[int(c)] for c in x["labels"]]} for x in items]  # noqa: E731
    assert coco_map(as_index(dets), as_index(gt), category_ids=CATS) == coco_map(dets, gt)
    with pytest.raises(InputError, match="class indices \\[3\\] outside 0..2"):
        coco_map([{**dets[0], "labels": [3] * len(dets[0]["labels"])}], as_index(gt), category_ids=CATS)


def test_bad_inputs_are_named():
    gt, dets = _scene(0)
    with pytest.raises(InputError, match=r"image\(s\) \[999\]"):
        coco_map([{**dets[0], "image_id": 999}], gt)
    with pytest.raises(InputError, match="3 boxes, 2 scores"):
        coco_map([{"image_id": 100, "boxes": np.ones((3, 4)), "scores": [1, 1], "labels": [3, 3, 3]}], gt)
    with pytest.raises(InputError, match="NaN"):
        coco_map([{"image_id": 100, "boxes": [[0, 0, np.nan, 1]], "scores": [1], "labels": [3]}], gt)
    with pytest.raises(InputError, match="no image"):
        coco_map(dets, [])


def test_ground_truth_from_split_converts_normalised_cxcywh_to_pixels():
    # image 5: 200 x 100 (w x h); boxes given in pixels xyxy
    xyxy = np.array([[20, 10, 60, 50], [100, 0, 200, 100]], np.float64)
    w, h = 200, 100
    cxcywh = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h,
                       (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h], axis=1)
    split = Split({
        "image": np.zeros((2, 3, 4, 4), np.uint8),
        "target_boxes": Ragged.from_rows([cxcywh, np.zeros((0, 4))], np.float32, (4,)),
        "target_classes": Ragged.from_rows([[1, 0], []], np.int64),
        "target_iscrowd": Ragged.from_rows([[False, True], []], bool),
        "orig_size": np.array([[h, w], [50, 60]], np.int64), "image_id": np.array([5, 6], np.int64),
    })
    gt = ground_truth_from_split(split)
    assert [g["image_id"] for g in gt] == [5, 6] and gt[0]["orig_size"] == (100, 200)
    np.testing.assert_allclose(gt[0]["boxes"], xyxy, atol=1e-4)
    assert gt[0]["labels"].tolist() == [1, 0] and gt[0]["iscrowd"].tolist() == [0, 1] and gt[0]["area"] is None
    assert gt[1]["boxes"].shape == (0, 4)
    found = [{"image_id": 5, "boxes": xyxy[:1], "scores": [0.8], "labels": [1]}]
    out = coco_map(found, gt, category_ids=[7, 9])  # the crowd box neither counts as missed nor as found
    assert out["AP"] == pytest.approx(1.0)
