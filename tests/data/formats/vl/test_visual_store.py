"""Real-format V&L splits: each image's regions stored once (in memory or cached on disk), and
batches equal to the per-record layout the readers gave before stores."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.assemble import assemble_pairs, assemble_refexp, assemble_retrieval, assemble_vqa
from cotrain.data.formats.vl.records import CaptionRecord, PairRecord, RefRecord, VQARecord
from cotrain.data.formats.vl.regions import NpzRegionStore, TsvRegionStore
from cotrain.data.stores import StoreCache

F, R = 8, 4


def _features(n_images: int = 6) -> dict[int, tuple]:
    rng = np.random.default_rng(3)
    out = {}
    for i in range(n_images):
        n = 3 + i % 4  # 3..6 regions: some padded, some cut at R = 4
        x0 = rng.uniform(0, 50, n)
        boxes = np.stack([x0, x0, x0 + 20, x0 + 30], 1).astype(np.float32)
        out[i] = ((rng.random((n, F)) * 30).astype(np.float32), boxes, 100, 80)
    return out


@pytest.fixture
def npz(tmp_path):
    folder = tmp_path / "feats"
    folder.mkdir()
    for i, (feats, boxes, w, h) in _features().items():
        np.savez(folder / f"{i}.npz", features=feats, boxes=boxes, image_w=w, image_h=h)
    return NpzRegionStore(folder)


def _write_tsv(path, images: dict):
    """The bottom-up-attention TSV layout: image_id, image_w, image_h, num_boxes, boxes, features (base64)."""
    b64 = lambda a: base64.b64encode(np.ascontiguousarray(a, np.float32).tobytes()).decode()  # noqa: E731
    lines = [f"{k}\t{w}\t{h}\t{len(b)}\t{b64(b)}\t{b64(f)}" for k, (f, b, w, h) in images.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _old_layout(source, key) -> dict[str, np.ndarray]:
    """What a record of image ``key`` carried before stores: the image's first R regions, zero-padded."""
    rf = source.get(key)
    n = min(R, rf.num_regions)
    out = {"regions": np.zeros((R, F), np.float32), "boxes": np.zeros((R, 4), np.float32),
           "region_mask": np.arange(R) < n}
    out["regions"][:n], out["boxes"][:n] = rf.features[:n], rf.boxes[:n]
    return out


def _assert_old_layout(batch, keys, source):
    for pos in np.ndindex(*keys.shape):
        old = _old_layout(source, int(keys[pos]))
        np.testing.assert_array_equal(batch["regions"][pos].numpy(), old["regions"].astype(np.float16))  # float16
        np.testing.assert_allclose(batch["regions"][pos].numpy(), old["regions"], rtol=2.0**-11)
        np.testing.assert_array_equal(batch["boxes"][pos].numpy(), old["boxes"])
        np.testing.assert_array_equal(batch["region_mask"][pos].numpy(), old["region_mask"])


def _questions(per_image: int = 3, images=range(6)):
    return [VQARecord(100 * i + q, i, f"question {q} about {i}?", ["yes"] * 10)
            for i in images for q in range(per_image)]


def test_vqa_questions_share_their_image_row_and_batches_equal_the_old_layout(npz):
    split, _, meta = assemble_vqa(_questions(3), npz, ["yes"], max_regions=R)
    store = split.stores["visual"]
    assert len(split) == 18 and len(store) == 6 and not store.mapped  # 6 images stored once, small: in memory
    assert split.arrays["visual_index"].tolist() == [i for i in range(6) for _ in range(3)]
    assert meta["region_dim"] == F and "regions" not in split.arrays
    rows = np.array([17, 0, 4, 9])
    _assert_old_layout(split.take(rows), split.arrays["image_id"][rows], npz)


def test_pairs_and_retrieval_views_index_the_stored_images(npz):
    pairs = [PairRecord(f"p{i}", (i % 6, (i + 1) % 6), "two images", i % 2) for i in range(8)]
    split, _, _ = assemble_pairs(pairs, npz, max_regions=R)
    assert split.arrays["visual_index"].shape == (8, 2) and len(split.stores["visual"]) == 6
    batch = split.take(np.array([1, 6]))
    assert batch["regions"].shape == (2, 2, R, F)
    _assert_old_layout(batch, split.arrays["image_id"][[1, 6]], npz)
    caps = [CaptionRecord(i % 6, f"caption {i}", "train") for i in range(12)]
    split, _, _ = assemble_retrieval(caps, npz, "train", max_regions=R, candidates=3)
    assert split.arrays["visual_index"].shape == (12,) and len(split.stores["visual"]) == 6
    assert split.arrays["candidate_index"].shape == (12, 3)
    _assert_old_layout(split.take(np.array([0, 11, 5])), split.arrays["image_id"][[0, 11, 5]], npz)
    views = {"visual": split.arrays["candidate_index"][[0, 11, 5]]}  # the candidates gathered as views
    _assert_old_layout(split.take(np.array([0, 11, 5]), views=views), split.arrays["candidate_id"][[0, 11, 5]], npz)


def test_tsv_source_gives_the_same_store(npz, tmp_path):
    tsv = TsvRegionStore(_write_tsv(tmp_path / "f.tsv", _features()))
    a, _, _ = assemble_vqa(_questions(2), npz, ["yes"], max_regions=R)
    b, _, _ = assemble_vqa(_questions(2), tsv, ["yes"], max_regions=R)
    for key in ("regions", "boxes", "region_mask"):
        np.testing.assert_array_equal(a.column(key), b.column(key))


def test_large_store_is_written_to_the_cache_and_reused_without_reading(npz, tmp_path, monkeypatch):
    cache = StoreCache(tmp_path / "stores", min_bytes=0)
    first, _, _ = assemble_vqa(_questions(3), npz, ["yes"], max_regions=R, cache=cache)
    store = first.stores["visual"]
    assert store.mapped and store.folder.parent == tmp_path / "stores"
    files = sorted(p.name for p in store.folder.iterdir())
    assert files == ["boxes.npy", "region_mask.npy", "regions.npy", "store.json"]
    monkeypatch.setattr(NpzRegionStore, "get", lambda self, key: pytest.fail("a cached store was read again"))
    again, _, _ = assemble_vqa(_questions(3), npz, ["yes"], max_regions=R, cache=cache)
    assert again.stores["visual"].folder == store.folder
    np.testing.assert_array_equal(again.column("regions"), first.column("regions"))
    monkeypatch.undo()
    fewer, _, _ = assemble_vqa(_questions(3, images=range(5)), npz, ["yes"], max_regions=R, cache=cache)
    other_r, _, _ = assemble_vqa(_questions(3), npz, ["yes"], max_regions=R + 1, cache=cache)
    path = npz.path(2)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # the file changed
    touched, _, _ = assemble_vqa(_questions(3), npz, ["yes"], max_regions=R, cache=cache)
    folders = {s.stores["visual"].folder for s in (first, fewer, other_r, touched)}
    assert len(folders) == 4 and len(list((tmp_path / "stores").iterdir())) == 4  # a new store for each change


def test_store_under_min_bytes_stays_in_memory(npz, tmp_path):
    split, _, _ = assemble_vqa(_questions(1), npz, ["yes"], max_regions=R, cache=StoreCache(tmp_path / "s"))
    assert not split.stores["visual"].mapped and not (tmp_path / "s").exists()


def test_candidate_rows_and_their_report_survive_the_cache(npz, tmp_path):
    cands = [(0, 0, 1, 1), (90, 70, 100, 80)]  # the second overlaps no region of image 1
    recs = [RefRecord(1, 1, "the first", (0, 0, 50, 50)), RefRecord(2, 1, "the second", (0, 0, 50, 50)),
            RefRecord("c", 1, "which?", (90, 70, 100, 80), candidates=cands)]
    cache = StoreCache(tmp_path / "stores", min_bytes=0)
    reports = []
    for _ in range(2):  # built, then reused
        split, report, _ = assemble_refexp(recs, npz, max_regions=R, cache=cache)
        reports.append(report.skipped)
        assert split.arrays["visual_index"].tolist() == [0, 0, 1] and len(split.stores["visual"]) == 2
        np.testing.assert_allclose(split.column("boxes", [2])[0, :2], np.array(cands) / [100, 80, 100, 80], atol=1e-6)
        assert split.column("label", [2])[0].tolist() == [0, 1, 0, 0]
    assert reports[0] == reports[1] == {"candidate boxes overlapping no region (region 0's features used)": 1}


def test_images_with_different_feature_sizes_are_an_error(npz):
    np.savez(npz.folder / "9.npz", features=np.zeros((2, F + 1), np.float32), boxes=np.zeros((2, 4), np.float32),
             image_w=10, image_h=10)
    store = NpzRegionStore(npz.folder)
    with pytest.raises(DataError, match="image 9: feature size 9 differs from 8 \\(image 0\\)"):
        assemble_vqa(_questions(1, images=[0, 9]), store, ["yes"], max_regions=R)
