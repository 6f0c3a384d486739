"""Train/serve agreement: the same file gives the same tensor through the data layer (what training
sees) and through ``cotrain.data.inputs.load_input`` (what ``predict`` sees)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from cotrain.config import ModelConfig, config_from_dict
from cotrain.data.formats.folders import read_audio_folder, read_image_folder
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.inputs import load_input, region_example
from cotrain.data.sources import build_all_task_data
from cotrain.errors import InputError

SIZE = 16
CFG = ModelConfig(encoders={"image": {"image_size": SIZE, "patch_size": 8},
                            "audio": {"sample_rate": 8000, "seconds": 0.5, "n_fft": 128, "hop_length": 64,
                                      "n_mels": 16, "patch": (8, 8)},
                            "regions": {"max_regions": 4}})


def rotated_jpeg(path, seed=0):
    """A 30 x 20 JPEG whose EXIF orientation (6: rotate 90° clockwise) makes it 20 x 30 when shown."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif.tobytes())
    return path


def rgba_png(path, seed=1):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 12, 4), dtype=np.uint8), mode="RGBA").save(path)
    return path


def test_an_image_file_is_the_same_tensor_in_a_folder_dataset_and_at_predict(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir(parents=True)
    files = [rotated_jpeg(tmp_path / "imgs" / "a" / "r.jpg"), rgba_png(tmp_path / "imgs" / "b" / "t.png")]
    data = read_image_folder(tmp_path / "imgs", image_size=SIZE, val_fraction=0.0, test_fraction=0.0)
    rel = data.meta["files"]["train"]
    for f in files:
        row = rel.index(f.relative_to(tmp_path / "imgs").as_posix())
        np.testing.assert_array_equal(load_input("image", f, CFG)["image"], data.train.arrays["image"][row])


def test_a_picture_is_the_same_tensor_in_the_vl_image_store_and_at_predict(tmp_path):
    # the old V&L predict path resized with another filter and skipped the EXIF rotation
    f = rotated_jpeg(tmp_path / "123.jpg")
    pixels, size = ImageFolderStore(tmp_path, SIZE).get(123)
    assert size == (20, 30)  # after the EXIF rotation
    np.testing.assert_array_equal(load_input("image", f, CFG)["image"], pixels)


def test_an_audio_file_is_the_same_tensor_in_a_folder_dataset_and_at_predict(tmp_path):
    for cls, freq in (("lo", 300.0), ("hi", 900.0)):
        (tmp_path / cls).mkdir()
        sf.write(tmp_path / cls / "x.wav", np.sin(2 * np.pi * freq * np.arange(6000) / 11025).astype(np.float32), 11025)
    data = read_audio_folder(tmp_path, sample_rate=8000, seconds=0.5, val_fraction=0.0, test_fraction=0.0)
    for row, rel in enumerate(data.meta["files"]["train"]):
        np.testing.assert_array_equal(load_input("audio", tmp_path / rel, CFG)["audio"], data.train.arrays["audio"][row])


def test_a_region_file_is_the_same_example_in_a_vqa_source_and_at_predict(tmp_path):
    rng = np.random.default_rng(0)
    feats = tmp_path / "feats"
    feats.mkdir()
    for i in (1, 2, 3):  # 6 regions each, more than max_regions = 4: both paths keep the first 4
        boxes = np.sort(rng.uniform(0, 60, (6, 4)), axis=1)[:, [0, 1, 2, 3]]
        np.savez(feats / f"{i}.npz", features=rng.random((6, 5), dtype=np.float32) * 100, boxes=boxes,
                 image_w=64, image_h=64)
    qs, anns = [], []
    for qid, img in ((11, 1), (12, 2), (13, 3)):
        qs.append({"question_id": qid, "image_id": img, "question": "what colour?"})
        anns.append({"question_id": qid, "image_id": img, "answers": [{"answer": "red", "answer_id": k + 1} for k in range(10)],
                     "multiple_choice_answer": "red", "answer_type": "other"})
    (tmp_path / "q.json").write_text(json.dumps({"questions": qs}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": anns}))
    files = {s: {"questions": str(tmp_path / "q.json"), "annotations": str(tmp_path / "a.json")} for s in ("train", "val", "test")}
    cfg = config_from_dict({"tasks": [{"name": "vqa", "source": {"kind": "vqa_v2", "files": files, "regions": str(feats)}}],
                            "model": {"trunk": "coattention", "encoders": {"regions": {"max_regions": 4}}},
                            "data": {"root": str(tmp_path / "cache")}})
    split = build_all_task_data(cfg)[0]["vqa"].train
    image_ids = split.column("image_id")
    for row, img in enumerate(image_ids.tolist()):
        got = load_input("regions", feats / f"{img}.npz", cfg.model)
        batch = split.take(np.array([row]))
        np.testing.assert_array_equal(batch["boxes"][0].numpy(), got["boxes"])
        np.testing.assert_array_equal(batch["region_mask"][0].numpy(), got["region_mask"])
        # the store keeps float16 features; the model casts them back, as predict's float32 ones are
        np.testing.assert_array_equal(batch["regions"][0].numpy(), got["regions"].astype(np.float16))


def test_region_examples_pad_and_truncate():
    ex = region_example(np.ones((2, 3)), np.full((2, 4), 0.5), 4)
    assert ex["regions"].shape == (4, 3) and ex["region_mask"].tolist() == [True, True, False, False]
    with pytest.raises(InputError, match="boxes"):
        region_example(np.ones((2, 3)), np.ones((3, 4)), 4)
