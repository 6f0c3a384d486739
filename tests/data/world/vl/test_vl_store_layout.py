"""World V&L splits keep each scene's visual arrays once; batches equal the old per-row layout."""

from __future__ import annotations

import numpy as np
import pytest
from vl_helpers import SPLITS, build

from cotrain.data.world import render_scene
from cotrain.data.world.vl import vl_scene
from cotrain.data.world.vl.regions import pack_regions, scene_proposals
from cotrain.data.world.vl.scenes import pool_seed


def _old_row(image_id: int, max_regions: int = 12) -> dict[str, np.ndarray]:
    """What a row showing scene ``image_id`` carried before stores: its own pixels and proposals,
    computed here from the scene alone (the proposal generator and the region packer)."""
    scene = vl_scene(0, image_id)
    image = render_scene(scene)
    boxes, _ = scene_proposals(scene, pool_seed(0), max_regions)
    regions, norm, mask = pack_regions(image[None], [boxes], max_regions)
    return {"image": image, "regions": regions[0], "boxes": norm[0], "region_mask": mask[0]}


@pytest.mark.parametrize("name", ["coco-ir", "nlvr", "vqa"])
def test_batches_equal_the_per_row_layout(small, name):
    split = small[name].train
    ids = split.arrays["image_id"]  # [N] or [N, K]
    rows = np.array([5, 0, 17, 3])
    batch = split.take(rows)
    for pos in np.ndindex(*ids[rows].shape):
        old = _old_row(int(ids[rows][pos]))
        np.testing.assert_array_equal(batch["image"][pos].numpy(), old["image"])
        np.testing.assert_array_equal(batch["boxes"][pos].numpy(), old["boxes"])
        np.testing.assert_array_equal(batch["region_mask"][pos].numpy(), old["region_mask"])
        np.testing.assert_array_equal(batch["regions"][pos].numpy(), old["regions"].astype(np.float16))  # float16
    assert batch["regions"].shape == (4, *ids.shape[1:], 12, old["regions"].shape[-1])


def test_each_scene_is_stored_once(small):
    for name in ("coco-ir", "nlvr", "vqa", "refcoco"):
        for s in SPLITS:
            split = small[name].split(s)
            ids, index = split.arrays["image_id"], split.arrays["visual_index"]
            shown = np.concatenate([ids.ravel(), split.arrays.get("candidate_id", ids).ravel()])
            assert len(split.stores["visual"]) == len(np.unique(shown))  # M = distinct scenes, not N * K
            for i in np.unique(ids):  # one scene, one store row
                assert len(np.unique(index[ids == i])) == 1
    train = small["coco-ir"].train  # 24 captions + 12 hard candidates each reference far fewer scenes
    a = train.arrays
    assert a["visual_index"].size == 24 and a["candidate_index"].size == 288 and len(train.stores["visual"]) < 80
    both = np.concatenate([a["visual_index"][:, None], a["candidate_index"]], axis=1)
    ids = np.concatenate([a["image_id"][:, None], a["candidate_id"]], axis=1)
    for i in np.unique(ids):  # a scene that is a caption's image and another's candidate: one store row
        assert len(np.unique(both[ids == i])) == 1


def test_candidate_expressions_get_a_store_row_each(small):
    for name in ("pointing", "guesswhat"):
        split = small[name].train
        assert split.arrays["visual_index"].tolist() == list(range(len(split)))  # their own proposals
        mask = split.column("region_mask")
        assert (mask.sum(axis=1) <= 12).all() and mask.any(axis=1).all()


def test_cache_reloads_stores_memory_mapped_and_rebuilds_a_damaged_one(tmp_path):
    a = build("nlvr", cache_dir=tmp_path)
    b = build("nlvr", cache_dir=tmp_path)
    assert b.meta["from_cache"] and all(b.split(s).stores["visual"].mapped for s in SPLITS)
    np.testing.assert_array_equal(b.val.column("regions"), a.val.column("regions"))
    stores = next(p for p in tmp_path.iterdir() if p.suffix == ".stores")
    (stores / "val-visual" / "regions.npy").unlink()
    c = build("nlvr", cache_dir=tmp_path)
    assert not c.meta["from_cache"]  # regenerated, not crashed
    np.testing.assert_array_equal(c.val.column("regions"), a.val.column("regions"))
    assert build("nlvr", cache_dir=tmp_path).meta["from_cache"]
