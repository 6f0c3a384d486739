"""Region feature stores: .npz folders and bottom-up-attention TSV files (base64 float32 buffers)."""

from __future__ import annotations

import base64
import csv

import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.records import MissingImageError
from cotrain.data.formats.vl.regions import BUTD_FIELDS, LXMERT_FIELDS, NpzRegionStore, TsvRegionStore


def _image(seed: int, r: int = 5, f: int = 8, w: int = 640, h: int = 480):
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(0, w / 2, r), rng.uniform(0, h / 2, r)
    boxes = np.stack([x0, y0, x0 + rng.uniform(1, w / 2, r), y0 + rng.uniform(1, h / 2, r)], 1).astype(np.float32)
    return rng.random((r, f)).astype(np.float32), boxes, w, h


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode()


def write_butd_tsv(path, images: dict, fieldnames=BUTD_FIELDS):
    """As generate_tsv.py writes it: csv.DictWriter, tab-separated, no header."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, delimiter="\t", fieldnames=list(fieldnames))
        for key, (feats, boxes, w, h) in images.items():
            row = {"image_id": key, "image_w": w, "image_h": h, "num_boxes": len(boxes), "boxes": _b64(boxes),
                   "features": _b64(feats)}
            if "img_id" in fieldnames:
                row = {"img_id": key, "img_w": w, "img_h": h, "num_boxes": len(boxes), "boxes": _b64(boxes),
                       "features": _b64(feats), "objects_id": "", "objects_conf": "", "attrs_id": "", "attrs_conf": ""}
            writer.writerow(row)
    return path


def test_tsv_base64_round_trip_and_normalised_boxes(tmp_path):
    big = _image(0, r=36, f=2048)  # 36 x 2048 floats: a 400 KB field, past csv's default 128 KiB limit
    images = {123456: big, 42: _image(1), 7: _image(2, r=3, w=100, h=50)}
    store = TsvRegionStore(write_butd_tsv(tmp_path / "trainval_36.tsv", images))
    assert len(store) == 3 and 42 in store and "000000123456" in store and 99 not in store
    got = store.get(123456)
    np.testing.assert_array_equal(got.features, big[0])
    assert got.features.dtype == np.float32 and got.boxes.shape == (36, 4) and (got.width, got.height) == (640, 480)
    np.testing.assert_allclose(got.boxes, big[1] / np.array([640, 480, 640, 480], np.float32), rtol=1e-6)
    assert got.boxes.min() >= 0 and got.boxes.max() <= 1
    small = store.get("7")
    scale = np.array([100, 50, 100, 50], np.float32)
    np.testing.assert_allclose(small.boxes * scale, np.clip(images[7][1], 0, scale), rtol=1e-5)
    with pytest.raises(KeyError, match="image 99"):
        store.get(99)


def test_tsv_lxmert_layout_and_several_files(tmp_path):
    a = write_butd_tsv(tmp_path / "a.tsv", {"n161313": _image(3)}, LXMERT_FIELDS)
    b = write_butd_tsv(tmp_path / "b.tsv", {5: _image(4)}, LXMERT_FIELDS)
    store = TsvRegionStore([a, b], fieldnames=LXMERT_FIELDS)
    assert sorted(map(str, store.keys())) == ["5", "n161313"]
    np.testing.assert_array_equal(store.get(5).features, _image(4)[0])
    assert store.get("n161313").width == 640
    with pytest.raises(DataError, match="appears twice"):
        TsvRegionStore([a, a], fieldnames=LXMERT_FIELDS).get(5)


def test_tsv_corrupt_row_names_file_and_image(tmp_path):
    path = write_butd_tsv(tmp_path / "feats.tsv", {1: _image(0), 2: _image(1)})
    lines = path.read_text().splitlines()
    cols = lines[1].split("\t")
    cols[5] = cols[5][: len(cols[5]) // 2]  # truncated features
    path.write_text(lines[0] + "\n" + "\t".join(cols) + "\n")
    store = TsvRegionStore(path)
    assert store.get(1).num_regions == 5
    with pytest.raises(DataError, match=r"feats\.tsv: image 2: .*'features'"):
        store.get(2)
    cols = lines[1].split("\t")
    cols[4] = "not*base64"
    path.write_text("\t".join(cols) + "\n")
    with pytest.raises(DataError, match=r"feats\.tsv: image 2: field 'boxes' is not valid base64"):
        TsvRegionStore(path).get(2)


def test_npz_store(tmp_path):
    feats, boxes, w, h = _image(5)
    np.savez(tmp_path / "123456.npz", features=feats, boxes=boxes, image_w=w, image_h=h)
    np.savez(tmp_path / "COCO_val2014_000000000042.npz", features=feats[:2], boxes=boxes[:2],
             image_size=np.array([w, h]))
    np.savez(tmp_path / "n161313.npz", features=feats, boxes=boxes, image_w=w, image_h=h)
    store = NpzRegionStore(tmp_path)
    assert len(store) == 3 and 42 in store and "n161313" in store and "123456" in store and 7 not in store
    got = store.get(123456)
    np.testing.assert_array_equal(got.features, feats)
    np.testing.assert_allclose(got.boxes, boxes / np.array([w, h, w, h], np.float32), rtol=1e-6)
    assert store.get(42).num_regions == 2 and store.get(42).height == h
    with pytest.raises(MissingImageError, match="image 7"):
        store.get(7)


def test_npz_store_bad_files(tmp_path):
    feats, boxes, w, h = _image(6)
    np.savez(tmp_path / "1.npz", features=feats, boxes=boxes[:3], image_w=w, image_h=h)
    np.savez(tmp_path / "2.npz", features=feats, boxes=boxes)
    (tmp_path / "3.npz").write_bytes(b"not a zip file")
    store = NpzRegionStore(tmp_path)
    with pytest.raises(DataError, match=r"1\.npz: image 1: boxes should be \[5, 4\]"):
        store.get(1)
    with pytest.raises(DataError, match=r"2\.npz: image 2: needs scalars 'image_w'"):
        store.get(2)
    with pytest.raises(DataError, match=r"3\.npz: image 3: cannot read"):
        store.get(3)
    with pytest.raises(DataError, match="not found"):
        NpzRegionStore(tmp_path / "nowhere")
