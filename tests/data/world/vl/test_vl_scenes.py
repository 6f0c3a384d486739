"""Shared scene pools: scenes independent of the task, split streams, cross-task overlap."""

from __future__ import annotations

import numpy as np
from vl_helpers import build

from cotrain.data.world import render_scene
from cotrain.data.world.vl import FLICKR_BASE, VL_TASKS, SceneStream, task_stream, vl_scene


def test_pools_differ_in_scene_distribution():
    coco = [vl_scene(0, i) for i in range(200)]
    flickr = [vl_scene(0, FLICKR_BASE + i) for i in range(200)]
    n_coco, n_flickr = [len(s) for s in coco], [len(s) for s in flickr]
    assert min(n_coco) == 2 and max(n_coco) == 6 and min(n_flickr) == 1 and max(n_flickr) == 3
    assert {o.size for s in flickr for o in s.objects} == {"large"}
    assert {o.size for s in coco for o in s.objects} == {"small", "large"}
    assert all(s.image_size == 48 for s in coco)
    assert vl_scene(0, 5) == vl_scene(0, 5) and vl_scene(0, 5) != vl_scene(1, 5)


def test_streams_split_the_pool():
    stream = SceneStream("refcoco", 0, "coco", 48)
    ids = {s: stream.ids(s, n) for s, n in (("train", 70), ("val", 15), ("test", 15))}
    assert all(len(set(v.tolist())) == len(v) for v in ids.values())
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    assert all((np.diff(v) > 0).all() for v in ids.values())  # pool order
    # about 7.5 % of the pool per task: the scanned range is ~ n / (0.075 * 0.7)
    assert 500 < ids["train"][-1] < 2500
    again = SceneStream("refcoco", 0, "coco", 48)
    np.testing.assert_array_equal(again.ids("train", 20), ids["train"][:20])
    other = SceneStream("vqa", 0, "coco", 48).ids("train", 70)
    assert not np.array_equal(other, ids["train"])  # each task its own draw over the same pool
    flickr = SceneStream("flickr-ir", 0, "flickr", 48).ids("train", 10)
    assert (flickr >= FLICKR_BASE).all()


def test_same_scene_same_pixels_in_every_task():
    vqa_ids = task_stream("vqa", 0, 48).ids("train", 400).tolist()
    ref_ids = task_stream("refcoco", 0, 48).ids("test", 100).tolist()
    shared = [(vqa_ids.index(i), ref_ids.index(i)) for i in set(vqa_ids) & set(ref_ids)]
    assert shared, "some refcoco test scenes are vqa train scenes"
    rv, rr = min(shared, key=max)
    vqa = build("vqa", n_train=rv + 1, n_val=0, n_test=0)
    ref = build("refcoco", n_train=0, n_val=0, n_test=rr + 1)
    image_id = vqa.train.arrays["image_id"][rv]
    assert ref.test.arrays["image_id"][rr] == image_id
    np.testing.assert_array_equal(vqa.train.column("image", [rv])[0], ref.test.column("image", [rr])[0])
    np.testing.assert_array_equal(vqa.train.column("image", [rv])[0], render_scene(vl_scene(0, image_id)))


def test_cross_task_overlap_is_present_but_bounded():
    """What the clean split (drop train / val scenes found in any test split) removes, from the task
    streams (views 0 only; retrieval hard negatives add a little): about 8 %."""
    sizes = {"train": 200, "val": 40, "test": 40}
    ids = {}
    for name in [n for n, t in VL_TASKS.items() if t.group != "pretrain"]:  # the twelve downstream tasks
        stream, k = task_stream(name, 0, 48), 2 if name == "nlvr" else 1
        ids[name] = {s: stream.ids(s, n * k) for s, n in sizes.items()}
    test = np.concatenate([v["test"] for v in ids.values()])
    removed = {name: sum(int(np.isin(v[s], test).sum()) for s in ("train", "val")) for name, v in ids.items()}
    total = sum(len(v[s]) for v in ids.values() for s in ("train", "val"))
    rate = sum(removed.values()) / total
    assert 0.03 < rate < 0.2, rate
    assert sum(r > 0 for r in removed.values()) >= 9, removed  # nearly every task loses something
    for name, v in ids.items():  # ... but never to itself
        assert not np.isin(v["test"], np.concatenate([v["train"], v["val"]])).any()
    coco_train = [set(v["train"].tolist()) for n, v in ids.items() if VL_TASKS[n].pool == "coco"]
    in_two = sum(1 for i in set().union(*coco_train) if sum(i in s for s in coco_train) >= 2)
    assert in_two > 50  # scenes shared between tasks' train splits too, like COCO images
