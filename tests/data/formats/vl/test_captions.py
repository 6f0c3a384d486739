"""Karpathy-split and plain COCO caption readers on tiny fixtures in the real layouts."""

from __future__ import annotations

import json
import re

import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.captions import read_captions, read_coco_captions, read_karpathy_captions


def _sent(raw, imgid, sentid):
    return {"raw": raw, "tokens": raw.lower().rstrip(".").split(), "imgid": imgid, "sentid": sentid}


def _karpathy_coco():
    return {
        "dataset": "coco",
        "images": [
            {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "imgid": 0, "cocoid": 391895,
             "split": "test", "sentids": [0, 1],
             "sentences": [_sent("A man with a red helmet on a small moped.", 0, 0),
                           _sent("  Man riding a motor bike. ", 0, 1)]},
            {"filepath": "train2014", "filename": "COCO_train2014_000000522418.jpg", "imgid": 1, "cocoid": 522418,
             "split": "train", "sentids": [2], "sentences": [_sent("A woman cutting a cake.", 1, 2)]},
            {"filepath": "val2014", "filename": "COCO_val2014_000000184613.jpg", "imgid": 2, "cocoid": 184613,
             "split": "restval", "sentids": [3, 4],
             "sentences": [_sent("A child holding a umbrella.", 2, 3),
                           {"tokens": ["two", "cows"], "imgid": 2, "sentid": 4}]},
            {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "imgid": 3, "cocoid": 42,
             "split": "val", "sentids": [5], "sentences": [_sent("   ", 3, 5)]},
        ],
    }


def _write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_karpathy_coco(tmp_path):
    f = _write(tmp_path / "dataset_coco.json", _karpathy_coco())
    recs, report = read_karpathy_captions(f)
    assert [r.image_id for r in recs] == [391895, 391895, 522418, 184613, 184613]
    assert [r.split for r in recs] == ["test", "test", "train", "train", "train"]  # restval -> train
    assert recs[1].caption == "Man riding a motor bike."
    assert recs[4].caption == "two cows"  # no raw: tokens joined
    assert recs[0].file_name == "val2014/COCO_val2014_000000391895.jpg"
    assert recs[0].source == str(f)
    assert report.skipped == {"empty caption": 1} and "imgid 3" in report.examples["empty caption"][0]
    only_test, _ = read_karpathy_captions(f, splits=("test",))
    assert len(only_test) == 2
    auto, _ = read_captions(f, split="restval")  # auto-detect; restval keeps the train split
    assert [r.image_id for r in auto] == [522418, 184613, 184613]


def test_karpathy_flickr_uses_filename_stem(tmp_path):
    data = {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentids": [0],
         "sentences": [_sent("Two young guys with shaggy hair.", 0, 0)]},
        {"filename": "10002456.jpg", "imgid": 1, "split": "val", "sentids": [1],
         "sentences": [_sent("Several men in hard hats.", 1, 1)]},
    ]}
    recs, report = read_karpathy_captions(_write(tmp_path / "dataset_flickr30k.json", data))
    assert [(r.image_id, r.split, r.file_name) for r in recs] == [
        ("1000092795", "train", "1000092795.jpg"), ("10002456", "val", "10002456.jpg")]
    assert report.summary() == "nothing skipped"


def test_plain_coco_captions(tmp_path):
    data = {
        "info": {}, "licenses": [],
        "images": [{"id": 391895, "file_name": "COCO_val2014_000000391895.jpg", "width": 640, "height": 360},
                   {"id": 522418, "file_name": "COCO_val2014_000000522418.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 391895, "caption": "A man riding a bike. "},
                        {"id": 2, "image_id": 522418, "caption": "A woman cutting a cake."},
                        {"id": 3, "image_id": 522418, "caption": ""}],
    }
    f = _write(tmp_path / "captions_val2014.json", data)
    recs, report = read_coco_captions(f, split="minival")
    assert [(r.image_id, r.caption, r.split) for r in recs] == [
        (391895, "A man riding a bike.", "val"), (522418, "A woman cutting a cake.", "val")]
    assert recs[1].file_name == "COCO_val2014_000000522418.jpg"
    assert report.skipped == {"empty caption": 1}
    auto, _ = read_captions(f)
    assert [r.split for r in auto] == [None, None]
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        read_coco_captions(f, split="holdout")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["images"][1].update(split="trainval"), "image 1 (imgid 1): unknown split 'trainval'"),
        (lambda d: d["images"][0].pop("filename"), "image 0 (imgid 0): missing field 'filename'"),
        (lambda d: d["images"][2].pop("cocoid"), "image 2 (imgid 2): missing field 'cocoid'"),
        (lambda d: d["images"][0]["sentences"][1].pop("raw") and d["images"][0]["sentences"][1].pop("tokens"),
         "image 0 (imgid 0) sentence 1: missing field 'tokens'"),
        (lambda d: d["images"][1].update(sentences="a cake"), "image 1 (imgid 1): field 'sentences' must be list"),
        (lambda d: d.pop("images"), "top level: missing field 'images'"),
    ],
)
def test_karpathy_errors_name_file_record_field(tmp_path, mutate, message):
    data = _karpathy_coco()
    mutate(data)
    f = _write(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_karpathy_captions(f)
    assert str(f) in str(err.value)


def test_coco_and_file_errors(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 9, "image_id": 2, "caption": "x"}]}
    with pytest.raises(DataError, match=re.escape("annotations[0] (id 9): image_id 2 is not among")):
        read_coco_captions(_write(tmp_path / "c.json", data), split="train")
    data["annotations"] = [{"id": 9, "image_id": 1, "caption": 5}]
    with pytest.raises(DataError, match="field 'caption' must be str"):
        read_coco_captions(_write(tmp_path / "c.json", data))
    with pytest.raises(DataError, match="not found"):
        read_captions(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"images": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON \(line 1"):
        read_captions(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not a caption file"):
        read_captions(_write(tmp_path / "other.json", {"questions": []}))
