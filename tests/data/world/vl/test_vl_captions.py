"""The caption pretraining tasks of the world (``captions``, ``captions-shift``): determinism, cache,
region classes against a brute-force IoU, captions true of their scenes, the pools of their own."""

from __future__ import annotations

import numpy as np
import pytest
from vl_helpers import SPLITS, build

from cotrain.data.world.common import SPLIT_OFFSETS, example_rng, task_seed
from cotrain.data.world.scene import SHAPES
from cotrain.data.world.vl import CC_BASE, CC_SHIFT_BASE, FLICKR_BASE, VL_TASKS, scene_for_vl_example, task_stream
from cotrain.data.world.vl import vl_scene
from cotrain.data.world.vl.captions import scene_caption
from cotrain.data.world.vl.retrieval import caption_possible

NAMES = ("captions", "captions-shift")


@pytest.fixture(scope="module")
def built():
    return {name: build(name, n_train=40, n_val=8, n_test=8) for name in NAMES}


def brute_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


@pytest.mark.parametrize("name", NAMES)
def test_layout_and_determinism(built, name):
    td = built[name]
    assert td.meta["head_type"] == "pretrain" and td.meta["group"] == "pretrain" and not td.multilabel
    assert td.class_names == ["background", *SHAPES]
    again, other = build(name, n_train=40, n_val=8, n_test=8), build(name, seed=1, n_train=40, n_val=8, n_test=8)
    for split in SPLITS:
        a, b = td.split(split).columns(), again.split(split).columns()
        assert set(a) == {"text_raw", "image_id", "image", "regions", "boxes", "region_mask", "region_classes"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split}/{key}")
        n = len(a["text_raw"])
        assert a["region_classes"].shape == (n, 12, 7) and a["region_classes"].dtype == np.float32
        batch = td.split(split).take(np.arange(min(4, n)))
        assert batch["region_classes"].shape == (min(4, n), 12, 7) and "label" not in batch
    assert list(td.train.arrays["text_raw"]) != list(other.train.arrays["text_raw"])


def test_cache_round_trip(tmp_path):
    a = build("captions", cache_dir=tmp_path, n_train=10, n_val=4, n_test=4)
    b = build("captions", cache_dir=tmp_path, n_train=10, n_val=4, n_test=4)
    assert not a.meta["from_cache"] and b.meta["from_cache"] and b.train.stores["visual"].mapped
    for split in SPLITS:
        for key, value in a.split(split).columns().items():
            np.testing.assert_array_equal(value, b.split(split).column(key), err_msg=f"{split}/{key}")
        np.testing.assert_array_equal(a.meta["extra"][split]["style"], b.meta["extra"][split]["style"])


@pytest.mark.parametrize("name", NAMES)
def test_region_classes_are_the_overlap_with_the_best_object(built, name):
    a = built[name].train.columns()
    mask, rc = a["region_mask"], a["region_classes"]
    np.testing.assert_allclose(rc[mask].sum(axis=1), 1.0, atol=1e-6)
    assert (rc[~mask] == 0).all() and (rc >= 0).all()
    one_hot = distractors = 0
    for row in range(5):
        scene = scene_for_vl_example(name, 0, "train", row, image_size=48)
        assert scene.index == a["image_id"][row]
        objects = [tuple(o.box) for o in scene.objects]
        for slot in np.flatnonzero(mask[row]):
            box = [float(v) * 48 for v in a["boxes"][row, slot]]
            ious = [brute_iou(box, o) for o in objects]
            best = int(np.argmax(ious))
            expected = np.zeros(7)
            expected[0] = 1 - ious[best]
            expected[1 + SHAPES.index(scene.objects[best].shape)] += ious[best]
            np.testing.assert_allclose(rc[row, slot], expected, atol=1e-5, err_msg=f"row {row} slot {slot}")
            one_hot += bool(ious[best] > 0.999)
            distractors += bool(max(ious) < 0.1)
    assert one_hot >= 10 and distractors >= 5  # exact object boxes are one-hot, distractors ~background


@pytest.mark.parametrize("name", NAMES)
def test_captions_are_true_of_their_scenes(built, name):
    ts = task_seed(0, name)
    styles = set()
    for split in SPLITS:
        texts = built[name].split(split).arrays["text_raw"]
        for row, text in enumerate(texts):
            scene = scene_for_vl_example(name, 0, split, row, image_size=48)
            again, style, facts = scene_caption(scene, example_rng(ts, SPLIT_OFFSETS[split] + row))
            assert again == text and facts and caption_possible(scene, facts), (split, row, text)
            styles.add(style)
    assert styles == {"coco", "flickr"}
    assert len(set(built[name].train.arrays["text_raw"])) >= 38  # varied


def test_shift_scenes_have_only_small_objects_and_no_size_word_says_otherwise(built):
    words = " ".join(built["captions-shift"].split(s).arrays["text_raw"][i].lower()
                     for s in SPLITS for i in range(len(built["captions-shift"].split(s).arrays["text_raw"])))
    assert " big " not in f" {words} " and " large " not in f" {words} "


def test_pools_of_their_own_and_a_measurable_shift():
    ids = {name: {s: task_stream(name, 0, 48).ids(s, n) for s, n in (("train", 300), ("val", 60), ("test", 60))}
           for name in VL_TASKS}
    every = {name: np.concatenate(list(v.values())) for name, v in ids.items()}
    downstream = np.concatenate([every[n] for n, t in VL_TASKS.items() if t.group != "pretrain"])
    assert (every["captions"] >= CC_BASE).all() and (every["captions"] < CC_SHIFT_BASE).all()
    assert (every["captions-shift"] >= CC_SHIFT_BASE).all() and (downstream < CC_BASE).all()
    for name in NAMES:
        assert not np.isin(every[name], downstream).any()

    def stats(base):
        scenes = [vl_scene(0, base + i) for i in range(200)]
        sides = [o.width / s.image_size for s in scenes for o in s.objects]
        return (np.mean(sides), np.mean([np.mean(s.background.rgb) for s in scenes]),
                {len(s) for s in scenes}, {o.size for s in scenes for o in s.objects})

    coco, cc, shift = stats(0), stats(CC_BASE), stats(CC_SHIFT_BASE)
    assert cc[2] == coco[2] == set(range(2, 7)) and cc[3] == coco[3] == {"small", "large"}
    assert abs(cc[0] - coco[0]) < 0.02 and abs(cc[1] - coco[1]) < 5  # the same distribution as coco
    assert shift[3] == {"small"} and shift[2] <= set(range(3, 7))
    assert shift[0] < cc[0] - 0.05 and shift[1] > cc[1] + 60  # smaller objects, lighter backgrounds
    assert min(np.mean(vl_scene(0, CC_SHIFT_BASE + i).background.rgb) for i in range(200)) > 120
    assert vl_scene(0, FLICKR_BASE).index == FLICKR_BASE  # other pools untouched


def test_region_features_shift(built):
    mean = {name: built[name].train.column("regions")[built[name].train.column("region_mask")].astype(np.float64)
            .mean(axis=0) for name in NAMES}
    # the grid cells' mean intensity (features 0-107) moves by far more than between two cc samples
    assert mean["captions-shift"][:108].mean() - mean["captions"][:108].mean() > 0.1
