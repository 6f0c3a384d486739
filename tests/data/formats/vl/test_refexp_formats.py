"""RefCOCO (restricted unpickling), Visual7W pointing and GuessWhat?! readers on tiny fixtures."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import struct

import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.refexp import (
    load_plain_pickle,
    read_guesswhat,
    read_refcoco,
    read_visual7w_pointing,
)


# ---------------------------------------------------------------------------- RefCOCO fixtures
def _refs():
    return [
        {"ref_id": 0, "ann_id": 101, "image_id": 11, "split": "train", "category_id": 1,
         "file_name": "COCO_train2014_000000000011_101.jpg", "sent_ids": [0, 1],
         "sentences": [{"tokens": ["the", "lady"], "raw": "THE LADY ", "sent": "the lady", "sent_id": 0},
                       {"tokens": ["woman", "left"], "raw": "Woman left", "sent": "woman left", "sent_id": 1}]},
        {"ref_id": 1, "ann_id": 102, "image_id": 11, "split": "testA", "category_id": 1,
         "file_name": "COCO_train2014_000000000011_102.jpg", "sent_ids": [2],
         "sentences": [{"tokens": ["man"], "raw": "man", "sent": "man", "sent_id": 2}]},
        {"ref_id": 2, "ann_id": 103, "image_id": 12, "split": "testB", "category_id": 3,
         "file_name": "COCO_train2014_000000000012_103.jpg", "sent_ids": [3],
         "sentences": [{"tokens": ["car"], "raw": "car", "sent_id": 3}]},
        {"ref_id": 3, "ann_id": 103, "image_id": 12, "split": "val", "category_id": 3,
         "file_name": "COCO_train2014_000000000012_103.jpg", "sent_ids": [], "sentences": []},
    ]


def _instances():
    return {
        "images": [{"id": 11, "width": 640, "height": 480, "file_name": "COCO_train2014_000000000011.jpg"},
                   {"id": 12, "width": 500, "height": 375, "file_name": "COCO_train2014_000000000012.jpg"}],
        "annotations": [{"id": 101, "image_id": 11, "bbox": [10.5, 20.0, 100.0, 50.25], "category_id": 1},
                        {"id": 102, "image_id": 11, "bbox": [0, 0, 640, 480], "category_id": 1},
                        {"id": 103, "image_id": 12, "bbox": [1, 2, 3, 4], "category_id": 3}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }


def _py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2's cPickle writes it: ``str`` as byte strings (opcode U/T)."""
    out = bytearray(b"\x80\x02")

    def enc(v):
        if isinstance(v, dict):
            out.extend(b"}(")
            for k, x in v.items():
                enc(k)
                enc(x)
            out.extend(b"u")
        elif isinstance(v, list):
            out.extend(b"](")
            for x in v:
                enc(x)
            out.extend(b"e")
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out.extend(b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<i", len(raw)) + raw)
        elif isinstance(v, float):
            out.extend(b"G" + struct.pack(">d", v))
        else:
            out.extend(b"J" + struct.pack("<i", v))

    enc(obj)
    out.extend(b".")
    return bytes(out)


def _instances_file(tmp_path, data=None):
    f = tmp_path / "instances.json"
    f.write_text(json.dumps(data or _instances()), encoding="utf-8")
    return f


def _check_refcoco(recs, report):
    assert [r.ref_id for r in recs] == [0, 1, 2, 3]
    assert [r.expression for r in recs] == ["the lady", "woman left", "man", "car"]  # sent, else raw
    assert [r.split for r in recs] == ["train", "train", "test", "test"]  # testA / testB -> test
    assert recs[0].box == (10.5, 20.0, 110.5, 70.25)  # xywh -> xyxy
    assert recs[2].box == (0.0, 0.0, 640.0, 480.0) and recs[3].box == (1.0, 2.0, 4.0, 6.0)
    assert [r.image_size for r in recs] == [(640, 480)] * 3 + [(500, 375)]
    assert recs[3].image_id == 12 and recs[0].candidates is None
    assert report.skipped == {"ref without sentences": 1}


def test_refcoco_python3_pickle(tmp_path):
    refs = tmp_path / "refs(unc).p"
    refs.write_bytes(pickle.dumps(_refs(), protocol=pickle.HIGHEST_PROTOCOL))
    _check_refcoco(*read_refcoco(refs, _instances_file(tmp_path)))


def test_refcoco_python2_pickle_decodes_byte_strings(tmp_path):
    data = _refs()
    data[0]["sentences"][0]["sent"] = "the café lady"
    refs = tmp_path / "refs(umd).p"
    refs.write_bytes(_py2_pickle(data))
    recs, _ = read_refcoco(refs, _instances_file(tmp_path))
    assert recs[0].expression == "the café lady" and isinstance(recs[0].expression, str)
    assert recs[2].split == "test"


def test_refcoco_json_conversion(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(_refs()), encoding="utf-8")
    _check_refcoco(*read_refcoco(refs, _instances_file(tmp_path)))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = [{"ref_id": 0, "sentences": [_Evil(marker)]}]
    refs = tmp_path / "refs(unc).p"
    refs.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(DataError, match=r"refused to unpickle: the pickle names the global (posix|nt)\.system") as err:
        read_refcoco(refs, _instances_file(tmp_path))
    assert str(refs) in str(err.value)
    assert not marker.exists()


def test_restricted_unpickler_refuses_any_global_and_bad_streams(tmp_path):
    f = tmp_path / "x.p"
    f.write_bytes(pickle.dumps({1, 2}, protocol=2))  # protocol 2 sets name builtins.set
    with pytest.raises(DataError, match=r"global (__builtin__|builtins)\.set"):
        load_plain_pickle(f)
    f.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # hand-written GLOBAL + REDUCE
    with pytest.raises(DataError, match="global builtins.eval"):
        load_plain_pickle(f)
    f.write_bytes(pickle.dumps([1, "a", 2.5, None, (True,)], protocol=4)[:-3])
    with pytest.raises(DataError, match="not a readable pickle"):
        load_plain_pickle(f)
    f.write_bytes(pickle.dumps({"a": [1, 2.5, None, (True, b"\xff")]}, protocol=4))
    assert load_plain_pickle(f) == {"a": [1, 2.5, None, (True, "\xff")]}  # bytes: latin-1 fallback


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r, i: r[1].update(split="testD"), "ref 1 (ref_id 1): unknown split 'testD'"),
        (lambda r, i: r[0].update(ann_id=999), "ref 0 (ref_id 0): ann_id 999 is not in instances.json"),
        (lambda r, i: r[2].update(image_id=7), "ref 2 (ref_id 2): image_id 7 is not in instances.json"),
        (lambda r, i: r[0]["sentences"][1].pop("sent_id"), "ref 0 (ref_id 0) sentence 1: missing field 'sent_id'"),
        (lambda r, i: r[2]["sentences"][0].pop("raw"), "ref 2 (ref_id 2) sentence 0: missing field 'raw'"),
        (lambda r, i: i["annotations"][1].update(bbox=[1, 2, 3]),
         "annotations[1]: field 'bbox' must be [x, y, width, height]"),
        (lambda r, i: i["images"][0].pop("height"), "images[0]: missing field 'height'"),
    ],
)
def test_refcoco_errors(tmp_path, mutate, message):
    refs, inst = _refs(), _instances()
    mutate(refs, inst)
    f = tmp_path / "refs.json"
    f.write_text(json.dumps(refs), encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        read_refcoco(f, _instances_file(tmp_path, inst))


def test_refcoco_not_a_list(tmp_path):
    f = tmp_path / "refs.p"
    f.write_bytes(pickle.dumps({"refs": []}))
    with pytest.raises(DataError, match="expected a list of refs, got dict"):
        read_refcoco(f, _instances_file(tmp_path))


# ----------------------------------------------------------------------------- Visual7W
def _v7w():
    return {
        "images": [
            {"image_id": 2354786, "filename": "v7w_2354786.jpg", "split": "val", "type": "pointing",
             "qa_pairs": [{"qa_id": 986, "image_id": 2354786, "question": "Which is the cup?", "answer": 1,
                           "multiple_choices": [2, 3, 4], "type": "which"},
                          {"qa_id": 987, "image_id": 2354786, "question": "Which is the red plate?", "answer": 3,
                           "multiple_choices": [1, 2, 4], "type": "which"}]},
            {"image_id": 2354787, "filename": "v7w_2354787.jpg", "split": "train", "type": "pointing",
             "qa_pairs": [{"qa_id": 990, "image_id": 2354787, "question": "Which dog is asleep?", "answer": 5,
                           "multiple_choices": [6, 7, 8], "type": "which"}]},
        ],
        "boxes": [{"box_id": k, "x": 10 * k, "y": 5 * k, "width": 20, "height": 30 + k, "name": f"obj{k}"}
                  for k in range(1, 9)],
    }


def test_visual7w_pointing(tmp_path):
    f = tmp_path / "dataset_v7w_pointing.json"
    f.write_text(json.dumps(_v7w()), encoding="utf-8")
    recs, report = read_visual7w_pointing(f)
    assert [(r.ref_id, r.image_id, r.split) for r in recs] == [
        (986, 2354786, "val"), (987, 2354786, "val"), (990, 2354787, "train")]
    assert recs[0].expression == "Which is the cup?"
    assert recs[0].box == (10.0, 5.0, 30.0, 36.0)  # box 1: x, y, width, height -> x0, y0, x1, y1
    box = {k: (10.0 * k, 5.0 * k, 10.0 * k + 20, 5.0 * k + 30 + k) for k in range(1, 9)}
    assert sorted(recs[0].candidates) == sorted(box[k] for k in (1, 2, 3, 4))
    assert recs[1].box == box[3] and recs[1].box in recs[1].candidates and len(recs[1].candidates) == 4
    # a fixed order: the same on every read, and not always the answer first
    again, _ = read_visual7w_pointing(f)
    assert [r.candidates for r in again] == [r.candidates for r in recs]
    assert any(r.candidates[0] != r.box for r in recs)
    assert recs[0].image_size is None and report.summary() == "nothing skipped"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["images"][0]["qa_pairs"][1].update(answer=99),
         "images[0] (image_id 2354786) qa_pairs[1] (qa_id 987): field 'answer' = 99 is not a box_id"),
        (lambda d: d["images"][1]["qa_pairs"][0]["multiple_choices"].__setitem__(2, "x"),
         "qa_pairs[0] (qa_id 990): field 'multiple_choices[2]' = 'x' is not a box_id"),
        (lambda d: d["boxes"][3].pop("width"), "boxes[3]: missing field 'width'"),
        (lambda d: d["images"][1].update(split="dev"), "images[1] (image_id 2354787): unknown split 'dev'"),
        (lambda d: d["images"][0]["qa_pairs"][0].pop("question"), "qa_pairs[0] (qa_id 986): missing field 'question'"),
    ],
)
def test_visual7w_errors(tmp_path, mutate, message):
    data = _v7w()
    mutate(data)
    f = tmp_path / "dataset_v7w_pointing.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        read_visual7w_pointing(f)


# ---------------------------------------------------------------------------- GuessWhat?!
def _game(gid, status="success", qas=None, target=1212):
    return {
        "id": gid, "status": status, "object_id": target, "questioner_id": 7, "timestamp": "2016-07-08 15:05:03",
        "image": {"id": 260136, "file_name": "COCO_train2014_000000260136.jpg", "width": 640, "height": 480,
                  "coco_url": "http://mscoco.org/images/260136", "flickr_url": "http://farm.example/x.jpg"},
        "objects": [{"id": 1211, "category": "cup", "category_id": 47, "bbox": [1.0, 2.0, 10.0, 20.0], "area": 200.0,
                     "iscrowd": False, "segment": []},
                    {"id": 1212, "category": "dog", "category_id": 18, "bbox": [50, 60, 100, 80], "area": 8000,
                     "iscrowd": False, "segment": []}],
        "qas": [{"question": "is it a cup?", "answer": "No", "id": 4962},
                {"question": "is it red?", "answer": "Yes", "id": 4963},
                {"question": "is it the one on the left?", "answer": "N/A", "id": 4964}] if qas is None else qas,
    }


def _write_games(path, games, gz=False):
    body = "\n".join(json.dumps(g) for g in games) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


def test_guesswhat(tmp_path):
    games = [_game(1), _game(2, "failure"), _game(3, "incomplete"), _game(4, qas=[]), _game(5, target=1211)]
    f = _write_games(tmp_path / "guesswhat.valid.jsonl.gz", games, gz=True)
    recs, report = read_guesswhat(f)
    assert [r.ref_id for r in recs] == [1, 5]
    assert recs[0].expression == "is it a cup? no. is it red? yes. is it the one on the left? n/a."
    assert recs[0].box == (50.0, 60.0, 150.0, 140.0) and recs[1].box == (1.0, 2.0, 11.0, 22.0)
    assert recs[0].candidates == [(1.0, 2.0, 11.0, 22.0), (50.0, 60.0, 150.0, 140.0)]
    assert recs[0].image_id == 260136 and recs[0].image_size == (640, 480) and recs[0].split == "val"
    assert report.skipped == {"status failure": 1, "status incomplete": 1, "game without questions": 1}
    everything, _ = read_guesswhat(f, split="train", statuses=("success", "failure", "incomplete"))
    assert [r.ref_id for r in everything] == [1, 2, 3, 5] and {r.split for r in everything} == {"train"}
    with pytest.raises(ValueError, match="unknown GuessWhat status 'won'"):
        read_guesswhat(f, statuses=("won",))


@pytest.mark.parametrize(
    "game, message",
    [
        (_game(1, target=9), "line 2: field 'object_id' = 9 is not the id of one of the game's objects"),
        (_game(1, qas=[{"question": "is it?", "answer": "Maybe", "id": 1}]), "line 2 qas[0]: unknown answer 'Maybe'"),
        (_game(1, status="won"), "line 2: unknown status 'won'"),
        ({k: v for k, v in _game(1).items() if k != "objects"}, "line 2: missing field 'objects'"),
        ({**_game(1), "image": {"id": 5, "width": 640}}, "line 2 image: missing field 'height'"),
    ],
)
def test_guesswhat_errors(tmp_path, game, message):
    f = _write_games(tmp_path / "guesswhat.train.jsonl", [_game(0), game])
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_guesswhat(f)
    assert str(f) in str(err.value)


def test_guesswhat_bad_json_line(tmp_path):
    f = tmp_path / "guesswhat.test.jsonl"
    f.write_text(json.dumps(_game(0)) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: not valid JSON"):
        read_guesswhat(f)
