"""UniT's detection path on the one model, end to end: train (with an image task beside it), evaluate
with COCOeval, diverge safely, save / load, predict from a file with the API and the CLI (--draw)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cotrain.api import load
from cotrain.cli import main
from cotrain.train.checkpoint import load_checkpoint
from cotrain.train.trainer import Trainer, TrainingDiverged
from detection_synthetic import SIZE, detection_task, unit_cfg
from synthetic import synthetic_task


def data():
    img = synthetic_task("img", "image", classes=3, n=96)
    img = type(img)("img", img.class_names, *(type(s)({**s.arrays, "image": np.repeat(np.repeat(s.arrays["image"], 2, -1), 2, -2)})
                                                for s in (img.train, img.val, img.test)))
    return {"det": detection_task(), "img": img}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unit")
    cfg = unit_cfg(tmp, steps=120)
    tr = Trainer(cfg, data=data())
    results = tr.fit()
    return tmp, cfg, tr, results


def test_detection_and_classification_train_in_one_model(trained):
    tmp, cfg, tr, results = trained
    assert results["det"]["metric"] == "detection" and 0.0 <= results["det"]["value"] <= 1.0
    assert {"AP50", "AP75", "AR100"} <= set(results["det"]["details"])
    assert results["img"]["value"] > results["img"]["chance"]
    # the detection loss fell: first vs last logged training losses of the task
    logs = [json.loads(line) for line in (tmp / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss/det"] for r in logs if r["kind"] == "train" and "loss/det" in r]
    assert len(losses) >= 20 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2])
    # one model: the decoder output has the task's own query count
    batch = {"image": torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8)}
    assert tr.model.encode(batch, "det").decoder.shape[:3] == (2, 2, 6)
    assert tr.model.encode(batch, "img").decoder.shape[:3] == (2, 2, 2)


def test_predict_from_a_file_gives_boxes_in_the_pictures_pixels(trained, tmp_path):
    tmp, cfg, tr, _ = trained
    pred = load(tmp / "run")
    arr = detection_task(n=1, seed=5).test.arrays["image"][0].transpose(1, 2, 0)
    big = Image.fromarray(arr).resize((2 * SIZE, 3 * SIZE), Image.Resampling.NEAREST)  # 64 wide, 96 high
    path = tmp_path / "scene.png"
    big.save(path)
    (row,) = pred.predict("det", [str(path)], top_k=3)
    assert len(row["objects"]) >= 3
    for obj in row["objects"]:
        x0, y0, x1, y1 = obj["box"]
        assert -1 <= x0 <= x1 <= 2 * SIZE + 1 and -1 <= y0 <= y1 <= 3 * SIZE + 1
        assert obj["label"] in ("red", "blue") and obj["attribute"] in ("small", "large")
    # the same picture at the model's size: boxes scale by the size ratio (2 wide, 3 high)
    Image.fromarray(arr).save(tmp_path / "small.png")
    (small,) = pred.predict("det", [str(tmp_path / "small.png")], top_k=3)
    a, b = np.array(small["objects"][0]["box"]), np.array(row["objects"][0]["box"])
    np.testing.assert_allclose(b, a * np.array([2, 3, 2, 3]), atol=1.0)  # resampling differs a little


def test_cli_predict_prints_objects_and_draws_them(trained, tmp_path, capsys):
    tmp, *_ = trained
    arr = detection_task(n=1, seed=6).test.arrays["image"][0].transpose(1, 2, 0)
    Image.fromarray(arr).save(tmp_path / "scene.png")
    out = tmp_path / "drawn.png"
    assert main(["predict", str(tmp / "run"), "--task", "det", str(tmp_path / "scene.png"), "--draw", str(out)]) == 0
    text = capsys.readouterr().out
    assert "objects" in text and "box [" in text and f"drawn to {out}" in text
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape[0] >= 256  # scaled up for readable captions
    original = np.asarray(Image.fromarray(arr).resize(drawn.shape[1::-1], Image.Resampling.NEAREST))
    assert (drawn != original).any(axis=-1).mean() > 0.01  # boxes and captions were drawn


def test_a_nan_box_stops_training_naming_task_and_step(tmp_path):
    cfg = unit_cfg(tmp_path, steps=30, checkpoint_every=10)
    tr = Trainer(cfg, data=data())
    tr.fit(stop_at=10)
    good = load_checkpoint(cfg.run.out_dir)
    tr2 = Trainer(cfg, data=data(), resume=cfg.run.out_dir)
    box_mlp = tr2.model.heads["det"].box_embed
    box_mlp.register_forward_hook(lambda m, i, out: out * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"task 'det' at step 10.*last good checkpoint"):
        tr2.fit()
    after = load_checkpoint(cfg.run.out_dir)
    assert after["dir"] == good["dir"] and after["state"]["step"] == 10


def test_degenerate_boxes_in_the_data_do_not_crash(tmp_path):
    d = data()
    boxes = d["det"].train.arrays["target_boxes"]
    boxes.values[::3, 2:] = 0.0  # zero-size targets
    cfg = unit_cfg(tmp_path, steps=6)
    assert "det" in Trainer(cfg, data=d).fit()


def test_the_detection_metric_equals_cocoeval_run_directly_on_the_same_detections(trained):
    """Oracle: pycocotools' COCOeval, driven by hand on the head's post-processed test detections,
    gives the AP that the evaluation path reports."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from cotrain.data.arrays import iterate_once
    from cotrain.train.evaluate import evaluate_task

    _, _, tr, _ = trained
    task = tr.data["det"]
    split = task.test
    ours = evaluate_task(tr.model, "det", task, "detection", split="test", batch_size=16)
    images, anns, dets = [], [], []
    tr.model.eval()
    with torch.no_grad():
        for batch in iterate_once(split, 16):
            preds = tr.model(batch, "det")
            for i, r in zip(batch["image_id"].tolist(), tr.model.heads["det"].postprocess(preds, batch["orig_size"])):
                for box, score, label in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist()):
                    x0, y0, x1, y1 = box
                    dets.append({"image_id": i, "category_id": label + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    for row in range(len(split)):
        i = int(split.arrays["image_id"][row])
        images.append({"id": i, "height": SIZE, "width": SIZE})
        for (cx, cy, w, h), c in zip(split.arrays["target_boxes"].row(row).tolist(), split.arrays["target_classes"].row(row).tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "iscrowd": 0, "area": w * h * SIZE * SIZE,
                         "bbox": [(cx - w / 2) * SIZE, (cy - h / 2) * SIZE, w * SIZE, h * SIZE]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["value"] == pytest.approx(max(ev.stats[0], 0.0), abs=1e-9)
    assert ours["details"]["AP50"] == pytest.approx(max(ev.stats[1], 0.0), abs=1e-5)
