"""The ``detect`` world task: the shared detection layout, targets checked against the pixels
(boxes hold exactly the painted pixels, the class is the shape painted there, the attribute its
colour), determinism, the cache round trip of Ragged arrays, the clean split."""

from __future__ import annotations

import numpy as np
import pytest

from cotrain.data.arrays import Split, TaskData
from cotrain.data.clean_split import clean_task_data
from cotrain.data.ragged import Ragged
from cotrain.data.world import COLOURS, SHAPES, build_world_task, world_class_names, world_task_info, world_task_inputs
from cotrain.data.world.build import join_ragged, split_ragged
from cotrain.data.world.detect import detect_scene
from cotrain.data.world.render import render_background, sensor_noise, shape_mask, to_uint8

SPLITS = ("train", "val", "test")
RAGGED = ("target_boxes", "target_classes", "target_attributes")


def build(seed=0, cache_dir=None, **kw):
    args = {"n_train": 12, "n_val": 4, "n_test": 4, **kw}
    return build_world_task("detect", seed=seed, cache_dir=cache_dir, **args)


def assert_same(a: TaskData, b: TaskData) -> None:
    for split in SPLITS:
        x, y = a.split(split).arrays, b.split(split).arrays
        assert list(x) == list(y)
        for key in x:
            if isinstance(x[key], Ragged):
                np.testing.assert_array_equal(x[key].values, y[key].values)
                np.testing.assert_array_equal(x[key].offsets, y[key].offsets)
            else:
                np.testing.assert_array_equal(x[key], y[key])


def test_arrays_follow_the_detection_layout():
    td = build(image_size=40)
    assert td.inputs == ("image",) and td.class_names == list(SHAPES) and not td.multilabel
    assert td.meta["head_type"] == "detect" and td.meta["attribute_names"] == list(COLOURS)
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        a = td.split(split).arrays
        assert set(a) == {"image", *RAGGED, "orig_size", "image_id"}
        assert a["image"].dtype == np.uint8 and a["image"].shape == (n, 3, 40, 40)
        assert a["orig_size"].dtype == np.int64 and a["orig_size"].tolist() == [[40, 40]] * n
        assert a["image_id"].dtype == np.int64 and len(set(a["image_id"].tolist())) == n
        boxes, classes, attrs = (a[k] for k in RAGGED)
        assert all(isinstance(r, Ragged) and len(r) == n for r in (boxes, classes, attrs))
        assert boxes.values.dtype == np.float32 and boxes.values.shape[1:] == (4,)
        assert classes.values.dtype == np.int64 and attrs.values.dtype == np.int64
        np.testing.assert_array_equal(boxes.offsets, classes.offsets)
        np.testing.assert_array_equal(boxes.offsets, attrs.offsets)
        assert set(boxes.lengths().tolist()) <= set(range(2, 7))  # the coco pool: 2-6 objects
        cx, cy, w, h = boxes.values.T
        assert (w > 0).all() and (h > 0).all()
        assert (cx - w / 2 >= 0).all() and (cx + w / 2 <= 1).all() and (cy - h / 2 >= 0).all() and (cy + h / 2 <= 1).all()
        assert classes.values.min() >= 0 and classes.values.max() < 6 and attrs.values.max() < 6
    batch = td.train.take(np.array([0, 3]))
    assert [t.shape[0] for t in batch["target_boxes"]] == td.train.arrays["target_boxes"].lengths()[[0, 3]].tolist()


def test_registered_as_an_image_task_with_a_detection_head():
    assert world_task_inputs("detect") == ("image",)
    assert world_class_names("detect") == list(SHAPES)
    assert world_task_info("detect") == ("detect", None, None)


def _background_only(scene, size):
    """The scene's picture without its objects (background + the same sensor noise)."""
    canvas = render_background(scene.background, size)
    canvas += sensor_noise(scene.background, canvas.shape)
    return to_uint8(canvas)


@pytest.mark.parametrize("seed", [0, 5])
def test_boxes_hold_the_painted_objects(seed):
    """Against the pixels: a pixel differs from the background-only render only inside some target
    box; inside each box the painted pixels span the box, the pixels changed by at least half the
    box's largest change match the shape named by the class better than any other shape (drawn in
    the box with the renderer's inside-test; measured margins >= 0.06 IoU), and their colour is
    nearest to the attribute's palette colour."""
    size = 64
    td = build(seed=seed, image_size=size, n_train=16)
    a = td.train.arrays
    names = td.meta["attribute_names"]
    palette = np.asarray([COLOURS[c] for c in names], dtype=np.float64)
    checked = 0
    for row in range(16):
        image = a["image"][row]
        scene = detect_scene(seed, int(a["image_id"][row]), size)
        boxes = a["target_boxes"].row(row)
        assert len(boxes) == len(scene.objects)  # one target per object
        diff = np.abs(image.astype(int) - _background_only(scene, size).astype(int)).max(axis=0)
        changed = diff > 12
        covered = np.zeros((size, size), dtype=bool)
        for (cx, cy, w, h), cls, attr in zip(boxes, a["target_classes"].row(row), a["target_attributes"].row(row)):
            x0, y0, x1, y1 = ((cx - w / 2) * size, (cy - h / 2) * size, (cx + w / 2) * size, (cy + h / 2) * size)
            ix0, iy0, ix1, iy1 = int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))
            covered[iy0:iy1, ix0:ix1] = True
            inside = changed[iy0:iy1, ix0:ix1]
            ys, xs = np.nonzero(inside)
            assert xs.max() - xs.min() + 1 >= 0.8 * (x1 - x0) and ys.max() - ys.min() + 1 >= 0.8 * (y1 - y0)
            u = ((np.arange(ix0, ix1) + 0.5 - (x0 + x1) / 2) * 2 / (x1 - x0))[None, :]
            v = ((np.arange(iy0, iy1) + 0.5 - (y0 + y1) / 2) * 2 / (y1 - y0))[:, None]
            box_diff = diff[iy0:iy1, ix0:ix1]
            strong = box_diff >= 0.5 * box_diff.max()
            ious = [(shape_mask(s, u, v) & strong).sum() / (shape_mask(s, u, v) | strong).sum() for s in SHAPES]
            assert int(np.argmax(ious)) == cls and ious[cls] > 0.75, (SHAPES[cls], np.round(ious, 2))
            colour = np.median(image[:, iy0:iy1, ix0:ix1][:, strong], axis=1)
            assert int(np.argmin(((palette - colour) ** 2).sum(axis=1))) == attr, (names[attr], colour)
            checked += 1
        assert not (changed & ~covered).any()  # nothing painted outside the boxes
    assert checked >= 40


def test_deterministic_seed_dependent_and_independent_of_split_sizes():
    assert_same(build(seed=2), build(seed=2))
    other = build(seed=3)
    assert not np.array_equal(build(seed=2).train.arrays["image_id"], other.train.arrays["image_id"])
    small, big = build(n_train=5), build(n_train=12)
    np.testing.assert_array_equal(small.train.arrays["image"], big.train.arrays["image"][:5])
    for key in RAGGED:
        np.testing.assert_array_equal(small.train.arrays[key].values, big.train.arrays[key][np.arange(5)].values)
    ids = {s: set(big.split(s).arrays["image_id"].tolist()) for s in SPLITS}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_cache_round_trip_keeps_the_ragged_targets(tmp_path):
    first = build(cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("detect-") and files[0].endswith(".npz")
    second = build(cache_dir=tmp_path)
    assert not first.meta["from_cache"] and second.meta["from_cache"]
    assert all(isinstance(second.train.arrays[k], Ragged) for k in RAGGED)
    assert second.meta["head_type"] == "detect" and second.meta["attribute_names"] == first.meta["attribute_names"]
    assert_same(first, second)
    with np.load(tmp_path / files[0]) as z:  # stored as values + offsets
        assert "train/target_boxes@values" in z.files and "train/target_boxes@offsets" in z.files


def test_a_cache_missing_a_ragged_part_is_regenerated(tmp_path):
    first = build(cache_dir=tmp_path)
    path = tmp_path / first.meta["cache_path"].split("/")[-1]
    with np.load(path) as z:
        kept = {k: z[k] for k in z.files if k != "val/target_classes@offsets"}
    np.savez(path, **kept)
    again = build(cache_dir=tmp_path)
    assert not again.meta["from_cache"]
    assert_same(first, again)


def test_split_and_join_ragged_are_inverse():
    r = Ragged.from_rows([np.zeros((2, 4)), np.zeros((0, 4)), np.ones((1, 4))], dtype=np.float32, row_shape=(4,))
    flat = {"train/x": np.arange(3), "train/r": r}
    stored = split_ragged(flat)
    assert set(stored) == {"train/x", "train/r@values", "train/r@offsets"}
    back = join_ragged(stored)
    assert list(back) == ["train/x", "train/r"] and back["train/r"].lengths().tolist() == [2, 0, 1]
    assert join_ragged({"train/r@values": r.values}) is None  # offsets missing
    assert join_ragged({"train/r@offsets": r.offsets}) is None  # values missing
    assert join_ragged({"train/r@values": r.values, "train/r@offsets": np.array([0, 5])}) is None  # do not fit


def test_clean_split_drops_detection_rows_with_their_targets():
    """A detection image that is another task's test image leaves detect's train split, its
    Ragged targets with it."""
    td = build(n_train=20)
    ids = td.train.arrays["image_id"]
    other_test = ids[[1, 4, 7]]
    other = TaskData("other", ["a", "b"],
                     *[Split({"text_raw": np.asarray(["x"] * 3), "label": np.zeros(3, dtype=np.int64),
                              "image_id": i}) for i in (np.array([-1, -2, -3]), np.array([-4, -5, -6]), other_test)])
    lengths = td.train.arrays["target_boxes"].lengths()
    clean_task_data({"detect": td, "other": other})
    keep = ~np.isin(ids, other_test)
    assert len(td.train) == 17 and td.meta["clean_split"]["train"]["rows_after"] == 17
    np.testing.assert_array_equal(td.train.arrays["image_id"], ids[keep])
    for key in RAGGED:
        np.testing.assert_array_equal(td.train.arrays[key].lengths(), lengths[keep])
