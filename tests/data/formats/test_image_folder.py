"""read_image_folder on real image files written with Pillow."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cotrain.data.arrays import TaskData
from cotrain.data.errors import DataError
from cotrain.data.formats.folders import read_image_folder

COLOURS = {"apple": (220, 20, 20), "banana": (20, 220, 20), "cherry": (20, 20, 220)}


def _save(path: Path, rgb, size=(24, 18), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, rgb)
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path)


def _tree(root: Path, per_class: int = 10, ext: str = "png", classes=COLOURS) -> Path:
    for cname, rgb in classes.items():
        for i in range(per_class):
            _save(root / cname / f"{cname}_{i:02d}.{ext}", rgb, size=(20 + i, 16 + 2 * i))
    return root


def _dominant(images: np.ndarray) -> np.ndarray:
    """Index of the strongest channel of each image ([N,3,H,W] → [N])."""
    return images.reshape(len(images), 3, -1).mean(-1).argmax(1)


def test_class_folders_shapes_labels_and_stratified_split(tmp_path):
    root = _tree(tmp_path / "fruit")
    td = read_image_folder(root, image_size=16, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert isinstance(td, TaskData)
    assert td.name == "fruit" and td.inputs == ("image",)
    assert td.class_names == ["apple", "banana", "cherry"]
    assert (len(td.train), len(td.val), len(td.test)) == (21, 3, 6)
    for split in (td.train, td.val, td.test):
        img, lab = split.arrays["image"], split.arrays["label"]
        assert img.dtype == np.uint8 and img.shape[1:] == (3, 16, 16)
        assert lab.dtype == np.int64
        # class c has its colour in channel c: labels match the files they came from
        np.testing.assert_array_equal(_dominant(img), lab)
    assert np.bincount(td.train.arrays["label"]).tolist() == [7, 7, 7]
    assert np.bincount(td.val.arrays["label"]).tolist() == [1, 1, 1]
    assert np.bincount(td.test.arrays["label"]).tolist() == [2, 2, 2]
    files = td.meta["files"]
    all_files = files["train"] + files["val"] + files["test"]
    assert len(set(all_files)) == 30  # disjoint and complete
    assert td.meta["layout"] == "class_folders"
    # pixel values survive: a solid colour stays that colour after resizing
    np.testing.assert_allclose(td.train.arrays["image"][0, :, 5, 5], COLOURS["apple"], atol=2)


def test_split_is_deterministic_and_seeded(tmp_path):
    root = _tree(tmp_path / "fruit", per_class=12)
    a = read_image_folder(root, image_size=8, seed=1, name="x")
    b = read_image_folder(root, image_size=8, seed=1, name="x")
    c = read_image_folder(root, image_size=8, seed=2, name="x")
    assert a.name == "x"
    assert a.meta["files"] == b.meta["files"]
    np.testing.assert_array_equal(a.train.arrays["image"], b.train.arrays["image"])
    assert a.meta["files"] != c.meta["files"]


def test_split_folders_and_carving(tmp_path):
    root = tmp_path / "ds"
    _tree(root / "train", per_class=10)
    _tree(root / "test", per_class=2)
    td = read_image_folder(root, image_size=12, val_fraction=0.2, test_fraction=0.5, progress=True)
    assert td.meta["layout"] == "split_folders"
    # test/ is used as is; val carved from train/ (2 of 10 per class); test_fraction is unused
    assert (len(td.train), len(td.val), len(td.test)) == (24, 6, 6)
    assert all(f.startswith("test/") for f in td.meta["files"]["test"])
    assert all(f.startswith("train/") for f in td.meta["files"]["val"])
    np.testing.assert_array_equal(_dominant(td.test.arrays["image"]), td.test.arrays["label"])

    _tree(root / "val", per_class=1)
    td = read_image_folder(root, image_size=12)
    assert (len(td.train), len(td.val), len(td.test)) == (30, 3, 6)


def test_formats_and_modes_become_rgb(tmp_path):
    root = tmp_path / "mixed"
    _save(root / "a" / "one.png", (200, 10, 10))
    _save(root / "a" / "two.JPG", (200, 10, 10))
    _save(root / "a" / "three.jpeg", (200, 10, 10), mode="L")  # greyscale
    _save(root / "a" / "four.bmp", (200, 10, 10))
    _save(root / "b" / "five.gif", (10, 10, 200), mode="P")  # palette
    _save(root / "b" / "six.webp", (10, 10, 200))
    _save(root / "b" / "seven.png", (10, 10, 200), mode="RGBA")
    (root / "b" / "notes.txt").write_text("not an image, ignored")
    (root / "b" / ".hidden.png").write_bytes(b"ignored: hidden")
    td = read_image_folder(root, image_size=10, val_fraction=0.0, test_fraction=0.0)
    assert len(td.train) == 7 and len(td.val) == 0 and len(td.test) == 0
    assert td.val.arrays["image"].shape == (0, 3, 10, 10)
    img, lab = td.train.arrays["image"], td.train.arrays["label"]
    assert img.shape == (7, 3, 10, 10) and img.dtype == np.uint8
    assert lab.tolist() == [0, 0, 0, 0, 1, 1, 1]
    grey = td.meta["files"]["train"].index("a/three.jpeg")
    assert np.ptp(img[grey].reshape(3, -1).mean(1)) < 2  # grey in, equal channels out
    for i, f in enumerate(td.meta["files"]["train"]):
        if f != "a/three.jpeg":
            assert _dominant(img[i : i + 1])[0] == (0 if f.startswith("a/") else 2), f


# ------------------------------------------------------------------------------------ errors
def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        read_image_folder(tmp_path / "nowhere", image_size=8)


def test_path_is_a_file(tmp_path):
    f = tmp_path / "single.png"
    _save(f, (1, 2, 3))
    with pytest.raises(DataError, match=re.escape("single.png")):
        read_image_folder(f, image_size=8)


def test_no_class_folders(tmp_path):
    root = tmp_path / "flatdir"
    _save(root / "x.png", (1, 2, 3))
    with pytest.raises(DataError, match="flatdir.*no class folders"):
        read_image_folder(root, image_size=8)


def test_empty_class_folder(tmp_path):
    root = _tree(tmp_path / "ds", per_class=3)
    (root / "durian").mkdir()
    (root / "durian" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="durian.*empty class folder"):
        read_image_folder(root, image_size=8)


def test_corrupt_image_is_named_not_skipped(tmp_path):
    root = _tree(tmp_path / "ds", per_class=4)
    (root / "banana" / "broken_file.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(DataError, match=re.escape("broken_file.png")):
        read_image_folder(root, image_size=8)


def test_truncated_jpeg_is_named(tmp_path):
    root = _tree(tmp_path / "ds", per_class=4)
    good = root / "apple" / "whole.jpg"
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    im.save(good, quality=90)
    data = good.read_bytes()
    (root / "apple" / "cut_short.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape("cut_short.jpg")):
        read_image_folder(root, image_size=8)


def test_class_in_val_absent_from_train(tmp_path):
    root = tmp_path / "ds"
    _tree(root / "train", per_class=3, classes={"apple": (255, 0, 0), "banana": (0, 255, 0)})
    _tree(root / "val", per_class=1, classes={"apple": (255, 0, 0), "banana": (0, 255, 0), "kiwi": (0, 0, 255)})
    with pytest.raises(DataError, match=r"val.kiwi.*absent from train"):
        read_image_folder(root, image_size=8)


def test_class_missing_from_test(tmp_path):
    root = tmp_path / "ds"
    _tree(root / "train", per_class=3, classes={"apple": (255, 0, 0), "banana": (0, 255, 0)})
    _tree(root / "test", per_class=1, classes={"apple": (255, 0, 0)})
    with pytest.raises(DataError, match=r"test.*banana.*missing from test"):
        read_image_folder(root, image_size=8)


def test_split_folders_without_train(tmp_path):
    root = tmp_path / "ds"
    _tree(root / "val", per_class=1)
    with pytest.raises(DataError, match="no train/ folder"):
        read_image_folder(root, image_size=8)


def test_stray_folder_next_to_split_folders(tmp_path):
    root = tmp_path / "ds"
    _tree(root / "train", per_class=2)
    _tree(root / "extras", per_class=1)
    with pytest.raises(DataError, match="extras"):
        read_image_folder(root, image_size=8)
