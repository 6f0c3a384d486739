"""NLVR2 reader on a tiny fixture in the release's JSON-lines layout."""

from __future__ import annotations

import json
import re

import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.nlvr import nlvr2_image_file, nlvr2_image_ids, read_nlvr2


def _ex(identifier, sentence, label, **extra):
    return {"validation": {}, "sentence": sentence, "left_url": "https://example.org/l.jpg", "writer": "103",
            "label": label, "right_url": "https://example.org/r.jpg", "synset": "n02123045",
            "query": "cat 25", "identifier": identifier, "extra_validations": {}, **extra}


ROWS = [
    _ex("dev-850-0-0", "The left image contains twice the number of dogs as the right image.", "True"),
    _ex("dev-850-0-1", "One image shows exactly two brown acorns.", "False"),
    _ex("train-10171-3-1", "There are two cats. ", "true"),
    _ex("test1-0-1-0", "A bird is flying.", False),
]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_nlvr2_reads_pairs_labels_splits(tmp_path):
    f = _write(tmp_path / "dev.json", ROWS)
    recs, report = read_nlvr2(f)
    assert [r.id for r in recs] == ["dev-850-0-0", "dev-850-0-1", "train-10171-3-1", "test1-0-1-0"]
    assert recs[0].image_ids == ("dev-850-0-img0", "dev-850-0-img1")
    assert recs[1].image_ids == recs[0].image_ids  # two sentences about the same pair
    assert recs[2].image_ids == ("train-10171-3-img0", "train-10171-3-img1")
    assert [r.label for r in recs] == [1, 0, 1, 0]
    assert [r.split for r in recs] == ["val", "val", "train", "test"]  # from the identifier's prefix
    assert recs[2].statement == "There are two cats."
    assert recs[0].source == str(f) and report.summary() == "nothing skipped"
    forced, _ = read_nlvr2(f, split="dev")
    assert {r.split for r in forced} == {"val"}


def test_image_name_helpers():
    assert nlvr2_image_ids("test1-0-1-0") == ("test1-0-1-img0", "test1-0-1-img1")
    assert nlvr2_image_file("dev-850-0-img1") == "dev-850-0-img1.png"
    for bad in ("dev-850-0", "dev-850-x-0", "-1-2-3", "dev-850-0-0-1"):
        with pytest.raises(ValueError, match="not <split>-<set_id>-<pair_id>-<sentence_id>"):
            nlvr2_image_ids(bad)


@pytest.mark.parametrize(
    "row, message",
    [
        (_ex("dev-850-1-0", "x", "Maybe"), "line 2 (identifier dev-850-1-0): unknown label 'Maybe'"),
        (_ex("dev-850-1", "x", "True"),
         "line 2 (identifier dev-850-1): field 'identifier': identifier 'dev-850-1' is not"),
        (_ex("hidden-1-1-0", "x", "True"),
         "line 2 (identifier hidden-1-1-0): unknown split prefix of the identifier 'hidden'"),
        ({k: v for k, v in _ex("dev-1-1-0", "x", "True").items() if k != "sentence"},
         "line 2 (identifier dev-1-1-0): missing field 'sentence'"),
        ({k: v for k, v in _ex("dev-1-1-0", "x", "True").items() if k != "identifier"},
         "line 2: missing field 'identifier'"),
        (_ex("dev-1-1-0", "  ", "True"), "line 2 (identifier dev-1-1-0): field 'sentence' is empty"),
        (_ex("dev-1-1-0", "x", 1), "line 2 (identifier dev-1-1-0): field 'label' must be str or bool"),
    ],
)
def test_nlvr2_errors(tmp_path, row, message):
    f = _write(tmp_path / "train.json", [ROWS[0], row])
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_nlvr2(f)
    assert str(f) in str(err.value)


def test_nlvr2_file_errors(tmp_path):
    with pytest.raises(DataError, match="NLVR2 JSON-lines file not found"):
        read_nlvr2(tmp_path / "nope.json")
    (tmp_path / "arr.json").write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: expected a JSON object, got list"):
        read_nlvr2(tmp_path / "arr.json")
    with pytest.raises(ValueError, match="unknown split 'hidden'"):
        read_nlvr2(tmp_path / "arr.json", split="hidden")
