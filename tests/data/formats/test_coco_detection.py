"""The COCO detection reader on fixtures in the exact COCO instances layout (info, licenses, images,
annotations with segmentation / area / iscrowd / bbox / category_id, categories) with tiny PNG and
JPEG files in COCO's train2017/ val2017/ folders."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from cotrain.config import ConfigError, config_from_dict
from cotrain.data.errors import DataError
from cotrain.data.formats.coco_detection import read_coco_detection, read_coco_instances
from cotrain.data.media import load_image
from cotrain.data.sources import build_task_data
from cotrain.tasks import task_inputs

CATEGORIES = [{"supercategory": "animal", "id": 18, "name": "dog"},
              {"supercategory": "person", "id": 1, "name": "person"},
              {"supercategory": "vehicle", "id": 3, "name": "car"}]
S = 16  # image_size


def _image(path, w, h, seed, fmt):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, format=fmt)


def _ann(aid, image_id, cat, bbox, crowd=0, area=None):
    x, y, w, h = bbox
    seg = ({"counts": [0, int(w * h)], "size": [int(h), int(w)]} if crowd else [[x, y, x + w, y, x + w, y + h, x, y + h]])
    return {"segmentation": seg, "area": float(w * h * 0.7) if area is None else area, "iscrowd": crowd,
            "image_id": image_id, "bbox": list(bbox), "category_id": cat, "id": aid}


def _write(root, split, images, anns, categories=CATEGORIES):
    """images: (id, w, h, format); writes root/<split>2017/<file> and root/annotations/instances_<split>2017.json."""
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for iid, w, h, fmt in images:
        name = f"{iid:012d}.{'png' if fmt == 'PNG' else 'jpg'}"
        _image(folder / name, w, h, iid, fmt)
        entries.append({"license": 1, "file_name": name, "coco_url": f"http://images.cocodataset.org/{split}2017/{name}",
                        "height": h, "width": w, "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": iid})
    doc = {"info": {"description": "tiny COCO", "version": "1.0", "year": 2017}, "licenses": [{"id": 1, "name": "x"}],
           "images": entries, "annotations": anns, "categories": categories}
    (root / "annotations").mkdir(exist_ok=True)
    path = root / "annotations" / f"instances_{split}2017.json"
    path.write_text(json.dumps(doc))
    return path


def _train(root, n=10):
    images = [(i, 40 + 4 * (i % 3), 30 + 2 * (i % 2), "PNG" if i % 2 else "JPEG") for i in range(1, n + 1)]
    anns = []
    for i, w, h, _ in images:
        if i == 2:
            continue  # an image without objects
        anns.append(_ann(1000 + 10 * i, i, [18, 1, 3][i % 3], (2.0, 3.0, 10.5, 8.0)))
        anns.append(_ann(1001 + 10 * i, i, 1, (w - 12.0, h - 9.0, 12.0, 9.0), crowd=int(i == 3)))
    return _write(root, "train", images, anns)


def _val(root):
    images = [(501, 48, 32, "JPEG"), (502, 36, 36, "PNG")]
    return _write(root, "val", images, [_ann(9001, 501, 3, (4, 4, 20, 10)), _ann(9002, 502, 18, (0, 0, 36, 36))])


def _read(root, files, **kw):
    return read_coco_detection(files, root, image_size=S, **kw)


def _where(td) -> dict[int, tuple[object, int]]:
    """image id -> (split, row) over the three splits."""
    return {int(i): (sp, k) for sp in (td.train, td.val, td.test) for k, i in enumerate(sp.arrays["image_id"])}


def test_layout_boxes_classes_and_pixels(tmp_path, capsys):
    train, val = _train(tmp_path), _val(tmp_path)
    td = _read(tmp_path, {"train": {"instances": str(train)}, "val": {"instances": str(val)}}, test_fraction=0.2)
    assert td.class_names == ["person", "car", "dog"] and td.meta["category_ids"] == [1, 3, 18]
    assert td.meta["head_type"] == "detect" and td.inputs == ("image",)
    assert "carved from train by image (seed 0): test 2 images" in capsys.readouterr().err
    train_ids, test_ids = (sp.arrays["image_id"].tolist() for sp in (td.train, td.test))
    assert len(train_ids) == 8 and sorted(train_ids + test_ids) == list(range(1, 11))
    assert td.val.arrays["image_id"].tolist() == [501, 502]
    where = _where(td)
    sp, row = where[5]  # image 5: 48 x 32 (w x h), a car and a person
    w, h = 48, 32
    assert sp.arrays["orig_size"][row].tolist() == [h, w]
    boxes = sp.arrays["target_boxes"].row(row)
    expected = [[(2 + 10.5 / 2) / w, (3 + 4) / h, 10.5 / w, 8 / h], [(w - 6) / w, (h - 4.5) / h, 12 / w, 9 / h]]
    assert boxes.dtype == np.float32
    np.testing.assert_allclose(boxes, expected, rtol=1e-6)
    assert sp.arrays["target_classes"].row(row).tolist() == [1, 0]  # category 3 (car), 1 (person)
    assert sp.arrays["target_area"].row(row).tolist() == pytest.approx([10.5 * 8 * 0.7, 12 * 9 * 0.7])
    assert sp.arrays["target_iscrowd"].row(row).tolist() == [False, False]
    sp3, row3 = where[3]
    assert sp3.arrays["target_iscrowd"].row(row3).tolist() == [False, True]  # kept, marked
    sp2, row2 = where[2]
    assert sp2.arrays["target_boxes"].row(row2).shape == (0, 4)  # an image without objects is kept
    # pixels: the data layer's own loader, resized square; stored once, gathered through visual_index
    image = sp.column("image")
    assert image.shape == (len(sp), 3, S, S) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[row], load_image(tmp_path / "train2017" / "000000000005.png", S))
    batch = td.val.take(np.array([0, 1]))
    np.testing.assert_array_equal(batch["image"][1].numpy(), load_image(tmp_path / "val2017" / "000000000502.png", S))
    assert batch["target_boxes"][1].tolist() == [[0.5, 0.5, 1.0, 1.0]] and batch["target_classes"][1].tolist() == [2]
    assert isinstance(batch["target_iscrowd"], list) and "visual_index" not in batch


def test_classes_follow_sorted_category_ids(tmp_path):
    inst = read_coco_instances(_train(tmp_path))
    assert inst.category_ids == [1, 3, 18] and inst.class_names == ["person", "car", "dog"]
    by_id = {r.image_id: r for r in inst.records}
    assert [r.image_id for r in inst.records] == list(range(1, 11))  # the file's image order
    assert by_id[4].classes.tolist() == [0, 0] and by_id[5].classes.tolist() == [1, 0]
    assert by_id[6].classes.tolist() == [2, 0] and by_id[6].ann_ids.tolist() == [1060, 1061]
    assert by_id[3].iscrowd.tolist() == [False, True] and by_id[2].boxes.shape == (0, 4)


def test_carving_is_seeded_by_image_and_a_given_file_wins(tmp_path):
    train = str(_train(tmp_path))
    files = {"train": {"instances": train}}
    a, b, c = (_read(tmp_path, files, val_fraction=0.2, test_fraction=0.2, seed=s) for s in (0, 0, 1))
    ids = lambda td: [td.split(s).arrays["image_id"].tolist() for s in ("train", "val", "test")]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert [len(x) for x in ids(a)] == [6, 2, 2] and sorted(sum(ids(a), [])) == list(range(1, 11))
    val = str(_val(tmp_path))
    with pytest.raises(DataError, match=r"source\.val_fraction = 0\.3 has no effect: the val split comes from "
                                        r"source\.files\.val"):
        _read(tmp_path, {**files, "val": {"instances": val}}, val_fraction=0.3)


def test_bad_boxes_are_clipped_and_reported_or_fail(tmp_path, capsys):
    images = [(1, 40, 30, "PNG"), (2, 40, 30, "PNG")]
    anns = [_ann(11, 1, 1, (30, 20, 20, 20)),  # leaves the image: clipped to (30, 20)-(40, 30)
            _ann(12, 1, 1, (-5, 0, 10, 10)),  # left of the image: clipped to (0, 0)-(5, 10)
            _ann(13, 2, 3, (50, 0, 5, 5)),  # wholly outside: dropped
            _ann(14, 2, 3, (5, 5, 0, 4)),  # zero width: dropped
            _ann(15, 2, 18, (1, 1, 4, 4))]
    path = _write(tmp_path, "train", images, anns)
    val = _write(tmp_path, "val", [(3, 20, 20, "PNG")], [_ann(31, 3, 1, (0, 0, 5, 5))])
    files = {"train": {"instances": str(path)}, "val": {"instances": str(val)}}
    td = _read(tmp_path, files, test_fraction=0.4)
    err = capsys.readouterr().err
    assert ("instances_train2017.json: 2 box(es) clipped to their image (annotation ids 11, 12), 2 dropped with "
            "nothing inside it (annotation ids 13, 14)") in err
    assert td.meta["bad_boxes"] == {"train": {"clipped": [11, 12], "dropped": [13, 14]}}
    sp, row = _where(td)[1]
    np.testing.assert_allclose(sp.arrays["target_boxes"].row(row), [[35 / 40, 25 / 30, 10 / 40, 10 / 30],
                                                                     [2.5 / 40, 5 / 30, 5 / 40, 10 / 30]], rtol=1e-6)
    sp, row = _where(td)[2]
    assert sp.arrays["target_classes"].row(row).tolist() == [2]
    with pytest.raises(DataError, match=r"instances_train2017\.json: annotation 11 \(image 1\): bbox "
                                        r"\[30\.0, 20\.0, 20\.0, 20\.0\] leaves its 40x30 image"):
        _read(tmp_path, files, bad_boxes="fail")
    path.write_text(json.dumps({**json.loads(path.read_text()), "annotations": anns[3:]}))
    with pytest.raises(DataError, match=r"annotation 14 \(image 2\): bbox .* has a non-positive width or height"):
        read_coco_instances(path, bad_boxes="fail")


@pytest.mark.parametrize("field, value, message", [
    ("category_id", 99, r"annotation 1010: category_id 99 is not among the file's categories \(ids \[1, 3, 18\]\)"),
    ("image_id", 77, r"annotation 1010: image_id 77 is not among the file's 10 images"),
])
def test_unknown_category_or_image_names_annotation_id_and_file(tmp_path, field, value, message):
    path = _train(tmp_path)
    doc = json.loads(path.read_text())
    doc["annotations"][0][field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"instances_train2017\.json: " + message):
        read_coco_instances(path)


def test_missing_image_file_fails_with_the_path_or_is_skipped(tmp_path, capsys):
    path = _train(tmp_path)
    (tmp_path / "train2017" / "000000000007.png").unlink()
    files = {"train": {"instances": str(path)}}
    with pytest.raises(DataError, match=r"train2017/000000000007\.png: image file not found \(image id 7 of "
                                        r"instances_train2017\.json"):
        _read(tmp_path, files)
    td = _read(tmp_path, files, missing="skip")
    assert 7 not in _where(td) and len(_where(td)) == 9
    assert "1 images without a file (e.g. " in capsys.readouterr().err


def test_images_must_have_the_size_the_json_gives(tmp_path):
    path = _train(tmp_path, n=3)
    doc = json.loads(path.read_text())
    doc["images"][0]["width"] = 41
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"000000000001\.png: image is 44x32 pixels .* instances_train2017\.json "
                                        r"gives 41x32"):
        _read(tmp_path, {"train": {"instances": str(path)}}, val_fraction=0.3, test_fraction=0.3)


def test_exif_rotated_jpeg_is_read_upright(tmp_path):
    raw = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high; EXIF 6: shown rotated, 20 x 40
    raw[:, :20] = 255
    folder = tmp_path / "train2017"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(folder / "000000000001.jpg", exif=exif, quality=95)
    for i in (2, 3):
        _image(folder / f"{i:012d}.png", 20, 40, i, "PNG")
    entries = [{"id": i, "file_name": f"{i:012d}.{'jpg' if i == 1 else 'png'}", "width": 20, "height": 40}
               for i in (1, 2, 3)]
    path = tmp_path / "instances_train2017.json"
    path.write_text(json.dumps({"images": entries, "categories": CATEGORIES,
                                "annotations": [_ann(1, 1, 1, (0, 0, 20, 20))]}))
    td = _read(tmp_path, {"train": {"instances": str(path)}}, val_fraction=0.3, test_fraction=0.3)
    sp, row = _where(td)[1]
    np.testing.assert_array_equal(sp.column("image")[row], load_image(folder / "000000000001.jpg", S))
    assert sp.arrays["orig_size"][row].tolist() == [40, 20]


def test_bad_files_config(tmp_path):
    path = str(_train(tmp_path))
    with pytest.raises(DataError, match=r"split keys \['all'\]"):
        _read(tmp_path, {"all": {"instances": path}})
    with pytest.raises(DataError, match=r"source\.files\.train must name the role 'instances'"):
        _read(tmp_path, {"train": {"questions": path}})
    with pytest.raises(DataError, match="needs a train instances file"):
        _read(tmp_path, {"val": {"instances": path}})
    info = tmp_path / "image_info_test2017.json"
    info.write_text(json.dumps({"images": [], "categories": CATEGORIES}))
    with pytest.raises(DataError, match="no 'annotations' list: not a COCO instances file \\(an image_info file"):
        read_coco_instances(info)


def test_a_coco_detection_task_in_a_config(tmp_path):
    train, val = _train(tmp_path), _val(tmp_path)
    raw = {"data": {"root": str(tmp_path / "cache")},
           "tasks": [{"name": "det", "source": {"kind": "coco_detection", "images": str(tmp_path),
                                                "files": {"train": {"instances": str(train)},
                                                          "val": {"instances": str(val)}}}}],
           "model": {"encoders": {"image": {"image_size": S}}}}
    cfg = config_from_dict(raw)
    assert task_inputs(cfg.tasks[0]) == ("image",)
    with contextlib.redirect_stderr(io.StringIO()):
        td = build_task_data(cfg.tasks[0], cfg)
    assert td.name == "det" and td.meta["head_type"] == "detect" and len(td.test) == 1
    with pytest.raises(ConfigError, match=r"tasks\[d\]\.source\.images: a coco_detection source needs `images`"):
        config_from_dict({"tasks": [{"name": "d", "source": {"kind": "coco_detection", "files": raw["tasks"][0]["source"]["files"]}}]})


def _official_and_ours(td, split, path, image_ids, seed):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from cotrain.metrics.detection import coco_map, ground_truth_from_split

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    rng = np.random.default_rng(seed)
    results = []
    for iid in image_ids:
        for a in gt.loadAnns(gt.getAnnIds(imgIds=[iid])):
            x, y, w, h = a["bbox"]
            results.append({"image_id": iid, "category_id": a["category_id"], "score": float(rng.uniform(0.2, 1)),
                            "bbox": [x + float(rng.normal(0, 1.5)), y + float(rng.normal(0, 1.5)), w, h]})
        results.append({"image_id": iid, "category_id": 18, "score": 0.3, "bbox": [1.0, 1.0, 9.0, 9.0]})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes([dict(r) for r in results]), "bbox")
        ev.params.imgIds = list(image_ids)  # the official evaluation of these images
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    cat_index = {c: i for i, c in enumerate(td.meta["category_ids"])}
    dets = [{"image_id": iid, "scores": [r["score"] for r in results if r["image_id"] == iid],
             "labels": [cat_index[r["category_id"]] for r in results if r["image_id"] == iid],
             "boxes": [[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                       for r in results if r["image_id"] == iid]} for iid in image_ids]
    ours = coco_map(dets, ground_truth_from_split(td.split(split)), category_ids=td.meta["category_ids"])
    return ours, np.maximum(ev.stats, 0.0)


def test_split_ground_truth_scores_as_the_official_evaluator_on_the_file(tmp_path):
    """Reader + ground_truth_from_split + coco_map against pycocotools run on the instances files themselves
    (val: a 36 x 36 box whose annotated area, 907, makes it small where its box area would make it medium)."""
    pytest.importorskip("pycocotools")
    train, val = _train(tmp_path), _val(tmp_path)
    files = {"train": {"instances": str(train)}, "val": {"instances": str(val)}}
    td = _read(tmp_path, files, test_fraction=0.2)
    for split, path, seed in (("test", train, 0), ("val", val, 1)):
        ours, official = _official_and_ours(td, split, path, td.split(split).arrays["image_id"].tolist(), seed)
        assert ours["AP"] > 0
        np.testing.assert_allclose(list(ours.values()), official, atol=1e-6, err_msg=split)
