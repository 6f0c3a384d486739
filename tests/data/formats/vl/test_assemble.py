"""Records + region / image stores → the split arrays of docs/vl-contract.md."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.assemble import (
    assemble_captions, assemble_entailment, assemble_pairs, assemble_refexp, assemble_retrieval, assemble_vqa, box_iou,
    image_id_int, pick_hard_negatives,
)
from cotrain.data.formats.vl.captions import read_captions
from cotrain.data.formats.vl.images import ImageFolderStore
from cotrain.data.formats.vl.records import (
    CaptionRecord, EntailRecord, MissingImageError, PairRecord, RefRecord, VQARecord,
)
from cotrain.data.formats.vl.regions import NpzRegionStore

F = 6
REF_BOXES = np.array([[0, 0, 50, 50], [0, 0, 40, 50], [50, 50, 100, 100], [0, 0, 25, 50], [10, 10, 20, 20]], np.float32)


def _npz(folder, key, feats, boxes, w=100, h=100):
    folder.mkdir(exist_ok=True)
    np.savez(folder / f"{key}.npz", features=np.asarray(feats, np.float32), boxes=np.asarray(boxes, np.float32),
             image_w=w, image_h=h)


@pytest.fixture
def regions(tmp_path):
    """Images 1 (5 regions, 100 x 100), 2 (2 regions, 200 x 100), "n9" (3 regions)."""
    folder = tmp_path / "feats"
    rng = np.random.default_rng(0)
    _npz(folder, 1, rng.random((5, F)), REF_BOXES)
    _npz(folder, 2, rng.random((2, F)), [[0, 0, 200, 100], [100, 0, 200, 50]], w=200)
    _npz(folder, "n9", rng.random((3, F)), REF_BOXES[:3])
    return NpzRegionStore(folder)


def _vqa_records():
    return [VQARecord(10, 1, "What is it?", ["cat"] * 7 + ["dog"] * 3, source="q.json"),
            VQARecord(11, 2, "How many?", ["2"] * 10, source="q.json"),
            VQARecord(12, 404, "Where?", ["park"] * 10, source="q.json"),
            VQARecord("g1", "n9", "Is it red?", ["yes"], source="gqa.json")]


def test_vqa_regions_padding_and_labels(regions):
    recs = [r for r in _vqa_records() if r.image_id != 404]
    split, report, meta = assemble_vqa(recs, regions, ["cat", "dog", "yes"], max_regions=4)
    arrays = split.columns()
    assert arrays["regions"].shape == (3, 4, F) and arrays["regions"].dtype == np.float16  # stored as float16
    assert arrays["boxes"].shape == (3, 4, 4) and arrays["region_mask"].dtype == bool
    assert arrays["region_mask"].sum(1).tolist() == [4, 2, 3]  # first max_regions kept, then padding
    assert (arrays["regions"][1, 2:] == 0).all() and (arrays["boxes"][1, 2:] == 0).all()
    np.testing.assert_allclose(arrays["boxes"][1, :2], [[0, 0, 1, 1], [0.5, 0, 1, 0.5]])  # by w = 200, h = 100
    np.testing.assert_array_equal(arrays["regions"][0], regions.get(1).features[:4].astype(np.float16))
    assert arrays["image_id"].dtype == np.int64 and arrays["image_id"][:2].tolist() == [1, 2]
    assert arrays["image_id"][2] >= 2**62 and meta["image_keys"][int(arrays["image_id"][2])] == "n9"
    assert arrays["text_raw"].tolist() == ["What is it?", "How many?", "Is it red?"]
    assert arrays["answers"][0].tolist() == [0] * 7 + [1] * 3 and (arrays["answers"][2] == 2).all()
    np.testing.assert_allclose(arrays["label"], [[1, 0.9, 0], [0, 0, 0], [0, 0, 1]], atol=1e-6)
    assert report.skipped["answers outside the vocabulary"] == 10 and meta["region_dim"] == F
    assert meta["ids"] == [10, 11, "g1"] and meta["class_names"] == ["cat", "dog", "yes"]


def test_vqa_answer_type_kept_or_derived(regions):
    recs = [r for r in _vqa_records() if r.image_id != 404]
    recs[1].answer_type = "other"  # the annotation's own field wins over the answers ("2": number)
    split, _, _ = assemble_vqa(recs, regions, ["cat"])
    arrays = split.columns()
    assert arrays["answer_type"].tolist() == ["other", "other", "yes/no"]  # "cat", kept, "yes"
    split, _, _ = assemble_vqa([recs[0], VQARecord(11, 2, "How many?", ["two"] * 6 + ["3"] * 4)], regions, ["cat"])
    arrays = split.columns()
    assert arrays["answer_type"].tolist() == ["other", "number"]
    unanswered = [VQARecord(1, 1, "What?", []), VQARecord(2, 2, "Why?", [])]  # test split: no type known
    split, _, _ = assemble_vqa(unanswered, regions, ["cat"])
    arrays = split.columns()
    assert "answer_type" not in arrays and len(arrays["label"]) == 2


def test_missing_image_fail_and_skip(regions):
    with pytest.raises(MissingImageError, match=r"q\.json: question 12: image 404 not found"):
        assemble_vqa(_vqa_records(), regions, ["cat"])
    split, report, meta = assemble_vqa(_vqa_records(), regions, ["cat"], missing="skip")
    arrays = split.columns()
    assert len(arrays["label"]) == 3 and meta["ids"] == [10, 11, "g1"]
    assert report.skipped["records whose image is missing"] == 1
    assert report.examples["records whose image is missing"] == ["question 12 (image 404)"]
    with pytest.raises(ValueError, match="missing"):
        assemble_vqa(_vqa_records(), regions, ["cat"], missing="ignore")


def test_vqa_image_store(tmp_path):
    Image.new("RGB", (32, 24), (200, 0, 0)).save(tmp_path / "COCO_val2014_000000000001.jpg")
    Image.new("RGB", (10, 10), (0, 200, 0)).save(tmp_path / "2.png")
    split, _, meta = assemble_vqa(_vqa_records()[:2], ImageFolderStore(tmp_path, 8), ["cat"])
    arrays = split.columns()
    assert arrays["image"].shape == (2, 3, 8, 8) and arrays["image"].dtype == np.uint8
    assert "regions" not in arrays and meta["image_size"] == 8 and arrays["image"][1, 1].mean() > 150


def test_refexp_labels_from_store_proposals(regions):
    recs = [RefRecord(1, 1, "the left one", (0, 0, 50, 50), source="refs.p"),
            RefRecord(2, 2, "the right one", (100, 0, 200, 50), image_size=(200, 100), source="refs.p")]
    split, report, meta = assemble_refexp(recs, regions, max_regions=5)
    arrays = split.columns()
    np.testing.assert_allclose(arrays["label"][0], [1, 0.8, 0, 0.5, 0], atol=1e-6)  # IoU >= 0.5 kept
    np.testing.assert_allclose(arrays["label"][1], [0, 1, 0, 0, 0], atol=1e-6)  # padding 0
    np.testing.assert_allclose(arrays["target_box"], [[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5]])
    assert arrays["label"].dtype == np.float32 and arrays["regions"].shape == (2, 5, F)
    assert meta["target_recall"] == 1.0 and meta["head_type"] == "refexp"


def test_refexp_candidates_take_best_iou_region_features(regions):
    cands = [(10, 10, 20, 20), (0, 0, 48, 50), (60, 60, 100, 100), (90, 0, 100, 5)]
    rec = RefRecord("p1", 1, "which cup?", (0, 0, 48, 50), candidates=cands, source="v7w.json")
    split, report, _ = assemble_refexp([rec], regions, max_regions=3)
    arrays = split.columns()
    feats = regions.get(1).features
    np.testing.assert_array_equal(arrays["regions"][0], feats[[4, 0, 2]].astype(np.float16))  # best-IoU regions
    np.testing.assert_allclose(arrays["boxes"][0], np.array(cands[:3]) / 100, atol=1e-6)
    assert arrays["region_mask"][0].tolist() == [True, True, True]
    np.testing.assert_allclose(arrays["label"][0], [0, 1, 0], atol=1e-6)
    assert report.skipped == {"candidates beyond max_regions=3 dropped": 1}
    far = RefRecord("p2", 1, "x", (90, 0, 100, 5), candidates=[(90, 0, 100, 5)], source="v7w.json")
    _, report, _ = assemble_refexp([far], regions, max_regions=3)
    assert "candidate boxes overlapping no region (region 0's features used)" in report.skipped


def test_refexp_image_store(tmp_path):
    Image.new("RGB", (100, 50), (9, 9, 9)).save(tmp_path / "7.jpg")
    store = ImageFolderStore(tmp_path, 8)
    with pytest.raises(DataError, match=r"g\.jsonl: ref 3: no candidate boxes"):
        assemble_refexp([RefRecord(3, 7, "it", (0, 0, 10, 10), source="g.jsonl")], store)
    rec = RefRecord(4, 7, "is it a cup?", (0, 0, 50, 50), candidates=[(50, 0, 100, 50), (0, 0, 50, 50)])
    split, _, _ = assemble_refexp([rec], store, max_regions=4)
    arrays = split.columns()
    assert arrays["image"].shape == (1, 3, 8, 8) and arrays["region_mask"][0].tolist() == [True, True, False, False]
    np.testing.assert_allclose(arrays["target_box"][0], [0, 0, 0.5, 1])  # by the image's own size
    np.testing.assert_allclose(arrays["label"][0], [0, 1, 0, 0])


def test_pairs_and_entailment(regions):
    pairs = [PairRecord("train-1-0-0", (1, "n9"), "both have dogs", 1), PairRecord("train-1-0-1", (2, 1), "no", 0)]
    split, _, meta = assemble_pairs(pairs, regions, max_regions=4)
    arrays = split.columns()
    assert arrays["regions"].shape == (2, 2, 4, F) and arrays["region_mask"].shape == (2, 2, 4)
    assert arrays["image_id"].shape == (2, 2) and arrays["image_id"][1].tolist() == [2, 1]
    assert arrays["image_id"][0, 1] == image_id_int("n9") and arrays["label"].tolist() == [1, 0]
    np.testing.assert_array_equal(arrays["regions"][1, 1], regions.get(1).features[:4].astype(np.float16))
    assert meta["head_type"] == "nlvr" and arrays["label"].dtype == np.int64
    ents = [EntailRecord("e1", 2, "a dog runs", 0), EntailRecord("e2", "n9", "a cat", 2)]
    split, _, meta = assemble_entailment(ents, regions, max_regions=4)
    arrays = split.columns()
    assert arrays["label"].tolist() == [0, 2] and arrays["regions"].shape == (2, 4, F)
    assert meta["head_type"] == "snli-ve"
    with pytest.raises(MissingImageError, match="pair e3: image 'zz'"):
        assemble_entailment([EntailRecord("e3", "zz", "x", 1)], regions)


def test_image_ids_are_stable():
    assert image_id_int(5) == 5 == image_id_int("000005")
    a = image_id_int("train-10171-0-img0")
    assert a == image_id_int("train-10171-0-img0") and a >= 2**62 and a != image_id_int("train-10171-0-img1")


def _retrieval_store(tmp_path):
    """6 images whose mean features lie on a circle: image i's nearest are i +- 1, then i +- 2."""
    folder = tmp_path / "ret"
    for i in range(6):
        angle = i * np.pi / 6
        f = np.array([np.cos(angle), np.sin(angle), 0, 0, 0, 0], np.float32) + 2
        _npz(folder, i, np.stack([f, f]), [[0, 0, 10, 10], [5, 5, 10, 10]])
    return NpzRegionStore(folder)


def test_retrieval_hard_candidates_fixed_and_never_the_true_image(tmp_path):
    store = _retrieval_store(tmp_path)
    caps = [CaptionRecord(i % 6, f"caption {n} of image {i % 6}", "train") for n, i in enumerate(range(12))]
    split, _, meta = assemble_retrieval(caps, store, "train", max_regions=2, candidates=3)
    arrays = split.columns()
    ids, cands = arrays["image_id"], arrays["candidate_id"]
    assert ids.shape == (12,) and arrays["regions"].shape == (12, 2, F) and (arrays["label"] == 0).all()
    assert cands.shape == arrays["candidate_index"].shape == (12, 3)
    assert (ids == np.arange(12) % 6).all() and not (cands == ids[:, None]).any()
    assert (cands[:6] == cands[6:]).all()  # chosen once per image, the same for all its captions
    assert cands[0].tolist() == [1, 2, 3] and cands[3, :2].tolist() in ([2, 4], [4, 2])  # most similar first
    assert meta["candidates"][5] == [4, 3, 2]
    stored = split.stores["visual"].take(arrays["candidate_index"])["regions"]  # the index gives those images
    for row in (0, 7):
        for j, image in enumerate(cands[row]):
            np.testing.assert_array_equal(stored[row, j], arrays["regions"][ids == image][0])
    again = assemble_retrieval(caps, store, "train", max_regions=2, candidates=3).split.columns()
    np.testing.assert_array_equal(again["candidate_id"], cands)
    assert assemble_retrieval(caps, store, "train", max_regions=2).arrays["candidate_id"].shape == (12, 5)  # 12 > 5 others
    with pytest.raises(DataError, match="at least 2 distinct images"):
        assemble_retrieval(caps[:1], store, "train")


def test_retrieval_eval_split(tmp_path):
    store = _retrieval_store(tmp_path)
    caps = [CaptionRecord(i % 3, f"c{i}", "test") for i in range(6)]
    split, _, meta = assemble_retrieval(caps, store, "test", max_regions=2)
    arrays = split.columns()
    assert arrays["image_id"].tolist() == [0, 1, 2, 0, 1, 2] and arrays["regions"].shape == (6, 2, F)
    assert meta["ids"] == list(range(6)) and "candidates" not in meta and "candidate_index" not in arrays


def test_pick_hard_negatives_matches_brute_force():
    desc = np.random.default_rng(1).normal(size=(40, 5))
    got = pick_hard_negatives(desc, 3)
    x = desc / np.linalg.norm(desc, axis=1, keepdims=True)
    sims = x @ x.T - 10 * np.eye(40)
    np.testing.assert_array_equal(got, np.argsort(-sims, axis=1, kind="stable")[:, :3])


def test_pick_hard_negatives_ties_go_to_the_lower_index():
    desc = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [0, 1], [1, 0.1]], np.float32)
    got = pick_hard_negatives(desc, 2)
    assert got[0].tolist() == [5, 1] and got[1].tolist() == [2, 3] and got[4].tolist() == [1, 2]


def test_box_iou():
    np.testing.assert_allclose(box_iou(REF_BOXES[:4], REF_BOXES[0])[:, 0], [1, 0.8, 0, 0.5], atol=1e-6)
    assert box_iou(np.zeros((2, 4)), np.zeros((1, 4))).tolist() == [[0], [0]]


# ------------------------------------------------------------------ caption images found by their own file names
EMOJI = {  # (filepath, filename) of the Karpathy entry -> where the file is, its colour
    0: ("train2014", "emoji_0203c_0.jpg", "train2014/emoji_0203c_0.jpg", (250, 0, 0)),
    1: ("train2014", "emoji_0203c_1.jpg", "train2014/emoji_0203c_1.jpg", (0, 250, 0)),
    2: ("train2014", "emoji_0203c_2.jpg", "train2014/emoji_0203c_2.jpg", (0, 0, 250)),
    3: ("val2014", "emoji_0203c_0.jpg", "val2014/emoji_0203c_0.jpg", (250, 250, 0)),  # a name train2014 has too
    4: ("val2014", "emoji_0204a_0.jpg", "emoji_0204a_0.jpg", (0, 250, 250)),  # <images>/<filename> fallback
}


def _jpg(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 10), rgb).save(path)


def _colour_of(pixels) -> np.ndarray:
    return pixels.reshape(3, -1).mean(axis=1)


def _karpathy_emoji(tmp_path, extra=()):
    folder = tmp_path / "images"
    for _, _, where, rgb in EMOJI.values():
        _jpg(folder / where, rgb)
    _jpg(folder / "COCO_train2014_000000000001.jpg", (255, 255, 255))  # what the id lookup would take for id 1
    entries = [{"filepath": fp, "filename": fn, "cocoid": i, "imgid": i,
                "split": "train" if fp == "train2014" else "val",
                "sentences": [{"raw": f"caption {k} of {fn}", "imgid": i, "sentid": 2 * i + k} for k in range(2)]}
               for i, (fp, fn, _, _) in EMOJI.items()] + list(extra)
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "images": entries}))
    return path, folder


def test_karpathy_images_are_found_by_filepath_and_filename(tmp_path):
    path, folder = _karpathy_emoji(tmp_path)
    records, _ = read_captions(path)
    split, report, meta = assemble_captions(records, ImageFolderStore(folder, 8))
    arrays = split.columns()
    assert not report.skipped and meta["head_type"] == "pretrain" and "label" not in arrays
    assert arrays["image_id"].tolist() == [i for i in EMOJI for _ in range(2)] and len(split.stores["visual"]) == 5
    for row, image_id in enumerate(arrays["image_id"].tolist()):
        assert np.abs(_colour_of(arrays["image"][row]) - EMOJI[image_id][3]).max() < 8, row
    val = assemble_retrieval([r for r in records if r.split == "val"], ImageFolderStore(folder, 8), "val")
    assert np.abs(_colour_of(val.split.columns()["image"][0]) - EMOJI[3][3]).max() < 8


def test_karpathy_missing_image_names_the_paths_tried(tmp_path):
    gone = {"filepath": "train2014", "filename": "emoji_0999z_0.jpg", "cocoid": 9, "split": "train",
            "sentences": [{"raw": "lost", "sentid": 99}, {"raw": "also lost", "sentid": 100}]}
    path, folder = _karpathy_emoji(tmp_path, [gone])
    records, _ = read_captions(path)
    tried = "tried train2014/emoji_0999z_0.jpg, emoji_0999z_0.jpg, any file named 'emoji_0999z_0.jpg'"
    with pytest.raises(MissingImageError, match=f"image 9 not found .*{tried}"):
        assemble_captions(records, ImageFolderStore(folder, 8))
    split, report, _ = assemble_captions(records, ImageFolderStore(folder, 8), missing="skip")
    assert len(split) == 10 and report.skipped == {"records whose image is missing": 2}
    assert "tried train2014/emoji_0999z_0.jpg" in report.examples["records whose image is missing"][0]


def test_coco_captions_images_are_found_by_file_name(tmp_path):
    folder = tmp_path / "images"
    _jpg(folder / "emoji_0203c_0.jpg", (250, 0, 0))
    _jpg(folder / "val2014" / "emoji_0203c_1.jpg", (0, 250, 0))  # found under the folder by its name
    _jpg(folder / "COCO_val2014_000000000011.jpg", (255, 255, 255))  # id 11 by the old lookup: never used
    data = {"images": [{"id": 11, "file_name": "emoji_0203c_0.jpg"}, {"id": 12, "file_name": "emoji_0203c_1.jpg"},
                       {"id": 13, "file_name": "emoji_0203c_7.jpg"}],
            "annotations": [{"id": 1, "image_id": 11, "caption": "a red one"},
                            {"id": 2, "image_id": 12, "caption": "green"},
                            {"id": 3, "image_id": 11, "caption": "red again"},
                            {"id": 4, "image_id": 13, "caption": "x"}]}
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps(data))
    records, _ = read_captions(path, split="val")
    split, report, _ = assemble_captions(records, ImageFolderStore(folder, 8), missing="skip")
    arrays = split.columns()
    assert arrays["image_id"].tolist() == [11, 12, 11] and report.skipped == {"records whose image is missing": 1}
    for row, rgb in enumerate([(250, 0, 0), (0, 250, 0), (250, 0, 0)]):
        assert np.abs(_colour_of(arrays["image"][row]) - rgb).max() < 8, row
    with pytest.raises(MissingImageError, match="tried emoji_0203c_7.jpg, any file named 'emoji_0203c_7.jpg'"):
        assemble_captions(records, ImageFolderStore(folder, 8))
