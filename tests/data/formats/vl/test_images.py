"""ImageFolderStore: images found by id (COCO-style names, plain ids, file names, a pattern)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.formats.vl.records import MissingImageError


def _save(path, rgb, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)
    return path


def test_lookup_by_coco_name_plain_id_and_file_name(tmp_path):
    _save(tmp_path / "train2014" / "COCO_train2014_000000123456.jpg", (250, 0, 0), (64, 48))
    _save(tmp_path / "000000000042.jpg", (0, 250, 0), (20, 10))
    _save(tmp_path / "n161313.png", (0, 0, 250))
    _save(tmp_path / "train-10171-0-img0.png", (250, 250, 250))
    (tmp_path / "notes.txt").write_text("not an image")
    store = ImageFolderStore(tmp_path, image_size=16)
    assert 123456 in store and "123456" in store and 42 in store and "n161313" in store and 7 not in store
    assert "COCO_train2014_000000123456.jpg" in store and "train-10171-0-img0" in store
    pixels, size = store.get(123456)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == np.uint8 and size == (64, 48)
    assert pixels[0].mean() > 200 and pixels[1].mean() < 30  # red
    assert store.get("000000000042")[1] == (20, 10) and store.size(42) == (20, 10)
    assert store.get("n161313")[0][2].mean() > 200
    assert sorted(map(str, store.keys())) == ["123456", "42", "n161313", "train-10171-0-img0"]
    with pytest.raises(MissingImageError, match="image 7 not found"):
        store.get(7)


def test_pattern(tmp_path):
    _save(tmp_path / "val2014" / "COCO_val2014_000000000009.jpg", (10, 20, 30))
    store = ImageFolderStore(tmp_path, image_size=8, pattern="val2014/COCO_val2014_{:012d}.jpg")
    assert 9 in store and "9" in store and 10 not in store
    assert store.get(9)[1] == (40, 30)
    with pytest.raises(KeyError, match="COCO_val2014_000000000010.jpg"):
        store.get(10)
    with pytest.raises(DataError, match="cannot format pattern"):
        store.get("n161313")


def test_unreadable_and_ambiguous(tmp_path):
    (tmp_path / "5.jpg").write_bytes(b"\xff\xd8 truncated")
    _save(tmp_path / "train2014" / "COCO_train2014_000000000003.jpg", (0, 0, 0))
    _save(tmp_path / "val2014" / "COCO_val2014_000000000003.jpg", (0, 0, 0))
    store = ImageFolderStore(tmp_path, image_size=8)
    with pytest.raises(DataError, match=r"5\.jpg: image 5: cannot read image file"):
        store.get(5)
    with pytest.raises(DataError, match="image 3 is ambiguous"):
        store.get(3)
    assert store.get("COCO_val2014_000000000003.jpg")[0].shape == (3, 8, 8)  # the file name is not ambiguous
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolderStore(tmp_path / "missing", image_size=8)


def test_bind_looks_images_up_by_their_own_file_names(tmp_path):
    """File names whose trailing digits are no image id (``emoji_0203c_0.jpg``: several per id prefix,
    one name in two folders): the id lookup finds them ambiguous, the bound file names do not."""
    _save(tmp_path / "train" / "emoji_0203c_0.jpg", (250, 0, 0))
    _save(tmp_path / "val" / "emoji_0203c_0.jpg", (0, 250, 0))
    _save(tmp_path / "emoji_0203c_1.jpg", (0, 0, 250))
    _save(tmp_path / "deep" / "er" / "emoji_0204a_0.jpg", (250, 250, 0))
    store = ImageFolderStore(tmp_path, image_size=8)
    with pytest.raises(DataError, match="image 0 is ambiguous"):  # the old, id-based lookup
        store.get(0)
    assert store.bind(0, "train/emoji_0203c_0.jpg") == tmp_path / "train" / "emoji_0203c_0.jpg"
    assert store.bind(1, "val/emoji_0203c_0.jpg") == tmp_path / "val" / "emoji_0203c_0.jpg"
    assert store.bind("b", "val2014/emoji_0203c_1.jpg") == tmp_path / "emoji_0203c_1.jpg"  # <images>/<filename>
    assert store.bind(3, "emoji_0204a_0.jpg") == tmp_path / "deep" / "er" / "emoji_0204a_0.jpg"  # the one of that name
    expected = {0: (250, 0, 0), 1: (0, 250, 0), "b": (0, 0, 250), 3: (250, 250, 0)}
    for key, rgb in expected.items():  # JPEG: within a few levels
        assert np.abs(store.get(key)[0].reshape(3, -1).mean(axis=1) - rgb).max() < 8, key
    assert 0 in store and "000" in store  # the bound key, in any of its forms
    assert store.bind(0, "train/emoji_0203c_0.jpg") is not None  # the same name again is fine
    with pytest.raises(DataError, match="two file names"):
        store.bind(0, "val/emoji_0203c_0.jpg")
    with pytest.raises(DataError, match="several files elsewhere are named 'emoji_0203c_0.jpg'"):
        store.bind(5, "test/emoji_0203c_0.jpg")
    assert store.bind(6, "val2014/gone.jpg") is None and 6 not in store
    assert store.tried(6) == "tried val2014/gone.jpg, gone.jpg, any file named 'gone.jpg' under the folder"
    with pytest.raises(MissingImageError, match="image 6 not found .tried val2014/gone.jpg, gone.jpg"):
        store.get(6)
    assert store.tried(7) is None
