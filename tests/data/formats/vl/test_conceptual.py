"""Conceptual Captions: the caption<TAB>image TSV, images by the URL's last path component or the
name, missing images skipped and counted, unparsable rows named by file and line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cotrain.config import config_from_dict
from cotrain.data.errors import DataError
from cotrain.data.formats.vl.conceptual import image_file_name, read_conceptual_captions
from cotrain.data.sources import build_all_task_data

COLOURS = {"station-1.jpg": (250, 0, 0), "player_007.jpg": (0, 250, 0), "x.png": (0, 0, 250),
           "9.jpg": (250, 250, 0)}
TRAIN = (
    "a very typical bus station\thttp://example.com/photos/station-1.jpg?w=400&h=300\n"
    "the player warms up before the game\tplayer_007.jpg\n"
    "a dead link\thttps://lost.example.org/gone/never-there.jpg\n"
    "\n"
    "  blue square on a wall  \thttp://cdn.example.net/a/b/x.png#frag\r\n"
    "the station again\thttps://mirror.example.com/station-1.jpg\n"
    "a yellow patch\t9.jpg\n"
)


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", (24, 16), rgb).save(folder / name)


def test_image_file_name():
    assert image_file_name("http://example.com/photos/a.jpg?w=400") == "a.jpg"
    assert image_file_name("https://x.org/p/q/b.png#top") == "b.png"
    assert image_file_name("  sub/c.jpg ") == "sub/c.jpg" and image_file_name("d.jpg") == "d.jpg"
    assert image_file_name("http://example.com/") == ""


def test_read_rows(tmp_path):
    path = tmp_path / "Train_GCC-training.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + TRAIN.encode())  # a BOM is tolerated
    records, report = read_conceptual_captions(path, split="train")
    assert [(r.caption, r.file_name, r.image_id) for r in records] == [
        ("a very typical bus station", "station-1.jpg", "station-1"),
        ("the player warms up before the game", "player_007.jpg", "player_007"),
        ("a dead link", "never-there.jpg", "never-there"),
        ("blue square on a wall", "x.png", "x"),
        ("the station again", "station-1.jpg", "station-1"),
        ("a yellow patch", "9.jpg", 9),
    ]
    assert {r.split for r in records} == {"train"} and {r.source for r in records} == {str(path)}
    assert not report.skipped


@pytest.mark.parametrize("line, message", [
    ("only one column\n", "line 2: expected 2 tab-separated columns .caption, image., got 1"),
    ("a\tb.jpg\textra\n", "line 2: expected 2 tab-separated columns .caption, image., got 3"),
    ("   \tb.jpg\n", "line 2: empty caption"),
    ("a caption\thttp://example.com/\n", "line 2: the image field 'http://example.com/' names no file"),
])
def test_unparsable_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "cc.tsv"
    path.write_text("fine\tfine.jpg\n" + line)
    with pytest.raises(DataError, match=message) as err:
        read_conceptual_captions(path)
    assert str(path) in str(err.value)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "cc.tsv"
    path.write_bytes(b"fine\tfine.jpg\nok\tok.jpg\ncaf\xe9\tcafe.jpg\n")
    with pytest.raises(DataError, match=r"cc\.tsv: line 3: not valid UTF-8"):
        read_conceptual_captions(path)
    with pytest.raises(DataError, match="not found"):
        read_conceptual_captions(tmp_path / "absent.tsv")


def cc_config(tmp_path, files, **source):
    return config_from_dict({
        "data": {"root": str(tmp_path / "data")},
        "tasks": [{"name": "cc", "source": {"kind": "conceptual_captions", "files": files,
                                            "images": str(tmp_path / "images"), **source}}],
        "model": {"trunk": "coattention", "dim": 16, "num_heads": 2,
                  "encoders": {"text": {"max_len": 12, "vocab_size": 64}, "image": {"image_size": 16}}},
        "run": {"out_dir": str(tmp_path / "run")},
    })


def test_source_skips_and_counts_missing_images(tmp_path, capsys):
    write_images(tmp_path / "images")
    (tmp_path / "train.tsv").write_text(TRAIN)
    (tmp_path / "val.tsv").write_text("red again\thttp://example.com/station-1.jpg?x=1\nnot here\tnothing.jpg\n")
    (tmp_path / "test.tsv").write_text("green\tplayer_007.jpg\n")
    files = {s: {"captions": str(tmp_path / f"{s}.tsv")} for s in ("train", "val", "test")}
    d = build_all_task_data(cc_config(tmp_path, files))[0]["cc"]
    assert d.meta["head_type"] == "pretrain" and d.meta["source_kind"] == "conceptual_captions"
    assert d.inputs == ("image", "text") and d.class_names == ["caption"]
    assert d.meta["skipped"] == {"train": {"records whose image is missing": 1},
                                 "val": {"records whose image is missing": 1}, "test": {}}
    assert "1 records whose image is missing" in capsys.readouterr().err  # the one-line report per split
    train = d.train.columns()
    assert "label" not in train and train["text"].shape == (5, 12) and train["image"].shape == (5, 3, 16, 16)
    assert train["text_raw"].tolist() == ["a very typical bus station", "the player warms up before the game",
                                          "blue square on a wall", "the station again", "a yellow patch"]
    names = ["station-1.jpg", "player_007.jpg", "x.png", "station-1.jpg", "9.jpg"]
    for row, name in enumerate(names):
        assert np.abs(train["image"][row].reshape(3, -1).mean(axis=1) - COLOURS[name]).max() < 8, row
    assert train["image_id"][0] == train["image_id"][3] and len(set(train["image_id"].tolist())) == 4
    assert len(d.train.stores["visual"]) == 4  # the station image stored once
    assert train["image_id"][4] == 9 and d.val.columns()["text_raw"].tolist() == ["red again"]


def test_source_carves_test_by_image(tmp_path):
    write_images(tmp_path / "images")
    rows = "".join(f"caption {i} of {name}\t{name}\n" for i in range(3) for name in COLOURS)
    (tmp_path / "train.tsv").write_text(rows)
    files = {"train": {"captions": str(tmp_path / "train.tsv")}}
    d = build_all_task_data(cc_config(tmp_path, files, val_fraction=0.25, test_fraction=0.25))[0]["cc"]
    ids = {s: set(d.split(s).arrays["image_id"].tolist()) for s in ("train", "val", "test")}
    assert all(len(v) == 1 for k, v in ids.items() if k != "train") and len(ids["train"]) == 2
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(len(d.split(s)) for s in ("train", "val", "test")) == 12  # all 3 captions of an image together
