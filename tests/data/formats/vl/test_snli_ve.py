"""SNLI-VE reader on a tiny fixture in the release's JSON-lines layout."""

from __future__ import annotations

import json
import re

import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.snli_ve import read_snli_ve


def _ex(fid, pair, hyp, gold, **extra):
    return {"Flickr30K_ID": fid, "annotator_labels": [gold], "captionID": f"{fid}.jpg#4", "gold_label": gold,
            "pairID": pair, "sentence1": "Two women are embracing while holding to go packages.",
            "sentence1_binary_parse": "( ( Two women ) ... )", "sentence1_parse": "(ROOT ...)",
            "sentence2": hyp, "sentence2_binary_parse": "( ... )", "sentence2_parse": "(ROOT ...)", **extra}


ROWS = [
    _ex("4705552913", "4705552913.jpg#2r1n", "The sisters are hugging goodbye.", "neutral"),
    _ex("4705552913", "4705552913.jpg#2r1e", " Two woman are holding packages. ", "entailment"),
    _ex("4705552913", "4705552913.jpg#2r1c", "The men are fighting outside a deli.", "contradiction"),
    _ex("2407214681", "2407214681.jpg#0r1n", "Two kids are at school.", "-"),
]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_snli_ve(tmp_path):
    f = _write(tmp_path / "snli_ve_dev.jsonl", ROWS)
    recs, report = read_snli_ve(f)
    assert [r.id for r in recs] == ["4705552913.jpg#2r1n", "4705552913.jpg#2r1e", "4705552913.jpg#2r1c"]
    assert [r.label for r in recs] == [1, 0, 2]  # entailment 0, neutral 1, contradiction 2
    assert {r.image_id for r in recs} == {"4705552913"} and recs[1].hypothesis == "Two woman are holding packages."
    assert {r.split for r in recs} == {"val"}  # from the file name
    assert report.skipped == {"no gold label ('-')": 1}
    assert report.examples["no gold label ('-')"] == ["2407214681.jpg#0r1n"]
    forced, _ = read_snli_ve(f, split="test")
    assert {r.split for r in forced} == {"test"}
    plain, _ = read_snli_ve(_write(tmp_path / "pairs.jsonl", ROWS[:1]))
    assert plain[0].split is None


def test_snli_ve_image_id_variants(tmp_path):
    a = {k: v for k, v in ROWS[0].items() if k != "Flickr30K_ID"}
    rows = [{**a, "Flikr30kID": "4705552913.jpg"}, a, {**ROWS[1], "Flickr30K_ID": 4705552913}]
    recs, _ = read_snli_ve(_write(tmp_path / "snli_ve_train.jsonl", rows))
    assert [r.image_id for r in recs] == ["4705552913"] * 3 and recs[0].split == "train"


@pytest.mark.parametrize(
    "row, message",
    [
        (_ex("1", "1.jpg#0r1n", "x", "Neutral "), None),  # case and spaces tolerated
        (_ex("1", "1.jpg#0r1n", "x", "maybe"), "line 2 (pairID 1.jpg#0r1n): unknown gold_label 'maybe'"),
        ({k: v for k, v in _ex("1", "1.jpg#0r1n", "x", "neutral").items() if k != "sentence2"},
         "line 2 (pairID 1.jpg#0r1n): missing field 'sentence2'"),
        ({k: v for k, v in _ex("1", "p", "x", "neutral").items() if k != "Flickr30K_ID"},
         "line 2 (pairID p): missing field 'Flickr30K_ID'"),
        ({k: v for k, v in _ex("1", "p", "x", "neutral").items() if k != "pairID"}, "line 2: missing field 'pairID'"),
        (_ex("1", "1.jpg#0r1n", "", "neutral"), "line 2 (pairID 1.jpg#0r1n): field 'sentence2' is empty"),
        (_ex("1", "1.jpg#0r1n", "x", 2), "line 2 (pairID 1.jpg#0r1n): field 'gold_label' must be str"),
    ],
)
def test_snli_ve_errors(tmp_path, row, message):
    f = _write(tmp_path / "snli_ve_test.jsonl", [ROWS[0], row])
    if message is None:
        assert read_snli_ve(f)[0][1].label == 1
        return
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_snli_ve(f)
    assert str(f) in str(err.value)


def test_snli_ve_bad_file(tmp_path):
    f = tmp_path / "snli_ve_dev.jsonl"
    f.write_bytes(b'{"pairID": "\xff"}\n')
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_snli_ve(f)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        read_snli_ve(f, split="valid")
