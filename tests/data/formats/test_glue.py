"""GLUE readers on fixtures written in each task's official layout (headers and column order as
GLUE distributes them, unquoted tab-separated rows with stray quotes)."""

from __future__ import annotations

import numpy as np
import pytest

from cotrain.config import ConfigError, config_from_dict
from cotrain.data.errors import DataError
from cotrain.data.formats.glue import glue_class_names, read_glue, read_glue_file, read_glue_unlabeled
from cotrain.data.sources import build_all_task_data

MNLI_TRAIN = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV = MNLI_TRAIN[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
MNLI_TEST = MNLI_TRAIN[:10]
MNLI_LABELS = ("contradiction", "entailment", "neutral")


def _tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def _mnli_row(i, a, b, label, ncols):
    fill = {"index": i, "promptID": 1000 + i, "pairID": f"{1000 + i}e", "genre": "fiction",
            "sentence1_binary_parse": f"( ( {a} ) )", "sentence2_binary_parse": f"( {b} )",
            "sentence1_parse": f"(ROOT (S {a}))", "sentence2_parse": f"(ROOT (S {b}))", "sentence1": a,
            "sentence2": b}
    return [fill.get(c, label) for c in ncols]


def _mnli(folder, n=12):
    folder.mkdir()
    train = [_mnli_row(i, f'"hello {i} said the man', f"a person speaks {i}", MNLI_LABELS[i % 3], MNLI_TRAIN)
             for i in range(n)]
    _tsv(folder / "train.tsv", MNLI_TRAIN, train)
    for part, g in (("matched", "fiction"), ("mismatched", "letters")):
        dev = [_mnli_row(i, f"{part} premise {i}", f"{part} hypothesis {i}", MNLI_LABELS[(i + 1) % 3], MNLI_DEV)
               for i in range(4)]
        dev.append(_mnli_row(9, "no consensus", "here", "-", MNLI_DEV))
        _tsv(folder / f"dev_{part}.tsv", MNLI_DEV, dev)
        _tsv(folder / f"test_{part}.tsv", MNLI_TEST,
             [_mnli_row(i, f"{part} test premise {i}", f"test hypothesis {i}", "", MNLI_TEST) for i in range(3)])
    return folder


def _qnli(folder, n=10):
    folder.mkdir()
    labels = ("entailment", "not_entailment")
    _tsv(folder / "train.tsv", ["index", "question", "sentence", "label"],
         [[i, f"what is {i}?", f"it is {i}.", labels[i % 2]] for i in range(n)])
    _tsv(folder / "dev.tsv", ["index", "question", "sentence", "label"],
         [[i, f"who is {i}?", f"nobody {i}.", labels[(i + 1) % 2]] for i in range(4)])
    _tsv(folder / "test.tsv", ["index", "question", "sentence"], [[i, f"why {i}?", f"because {i}."] for i in range(3)])
    return folder


def _qqp(folder, n=10):
    folder.mkdir()
    head = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    _tsv(folder / "train.tsv", head, [[i, 2 * i, 2 * i + 1, f'how do i "learn {i}?', f"ways to learn {i}?", i % 2]
                                      for i in range(n)])
    _tsv(folder / "dev.tsv", head, [[i, 2 * i, 2 * i + 1, f"q {i}?", f"p {i}?", (i + 1) % 2] for i in range(4)])
    _tsv(folder / "test.tsv", ["id", "question1", "question2"], [[i, f"tq {i}?", f"tp {i}?"] for i in range(3)])
    return folder


def _sst2(folder, n=10):
    folder.mkdir()
    _tsv(folder / "train.tsv", ["sentence", "label"], [[f"a {'great' if i % 2 else 'dull'} film {i} ", i % 2]
                                                        for i in range(n)])
    _tsv(folder / "dev.tsv", ["sentence", "label"], [[f"dev film {i}", i % 2] for i in range(4)])
    _tsv(folder / "test.tsv", ["index", "sentence"], [[i, f"test film {i}"] for i in range(3)])
    return folder


MAKERS = {"mnli": _mnli, "qnli": _qnli, "qqp": _qqp, "sst2": _sst2}


def _texts(split):
    return [str(t) for t in split.arrays["text_raw"]]


def test_mnli_pairs_labels_splits_and_skipped_rows(tmp_path, capsys):
    td = read_glue(_mnli(tmp_path / "MNLI"), "mnli", test_fraction=0.25, seed=0)
    assert td.class_names == ["contradiction", "entailment", "neutral"] and td.inputs == ("text",)
    # train + test are train.tsv's 12 rows, disjoint, stratified (4 per class -> 1 test row each)
    train, test = _texts(td.train), _texts(td.test)
    assert len(train) == 9 and len(test) == 3 and not set(train) & set(test)
    assert sorted(td.test.arrays["label"].tolist()) == [0, 1, 2]
    # the stray quote stays a character (QUOTE_NONE): every row is its own line
    assert '"hello 0 said the man [SEP] a person speaks 0' in train + test
    row = (train + test).index('"hello 4 said the man [SEP] a person speaks 4')
    assert np.concatenate([td.train.arrays["label"], td.test.arrays["label"]])[row] == 1  # entailment
    # val = dev_matched.tsv; its '-' row is skipped and reported
    assert _texts(td.val) == [f"matched premise {i} [SEP] matched hypothesis {i}" for i in range(4)]
    assert td.val.arrays["label"].tolist() == [1, 2, 0, 1]
    err = capsys.readouterr().err
    assert "skipped 1 row(s) of dev_matched.tsv without a gold label" in err and "line(s) 6" in err
    mism = read_glue(tmp_path / "MNLI", "mnli", mnli_dev="mismatched")
    assert _texts(mism.val)[0] == "mismatched premise 0 [SEP] mismatched hypothesis 0"


@pytest.mark.parametrize("task, pair, val0", [
    ("qnli", "what is 0? [SEP] it is 0.", ("who is 0? [SEP] nobody 0.", 1)),
    ("qqp", 'how do i "learn 0? [SEP] ways to learn 0?', ("q 0? [SEP] p 0?", 1)),
    ("sst2", "a dull film 0", ("dev film 0", 0)),
])
def test_each_task_reads_its_official_layout(tmp_path, task, pair, val0):
    td = read_glue(MAKERS[task](tmp_path / task), task, test_fraction=0.2, seed=3)
    assert td.class_names == glue_class_names(task) and len(td.class_names) == 2
    assert len(td.train) + len(td.test) == 10 and len(td.test) == 2 and len(td.val) == 4
    everything = dict(zip(_texts(td.train) + _texts(td.test),
                          np.concatenate([td.train.arrays["label"], td.test.arrays["label"]]).tolist()))
    assert everything[pair] == 0  # row 0 has the first label (entailment / 0 / 0)
    assert (_texts(td.val)[0], int(td.val.arrays["label"][0])) == val0
    assert td.meta["files"] == {"train": "train.tsv", "val": "dev.tsv", "test": "train.tsv"}


def test_test_split_is_seeded_and_stratified(tmp_path):
    folder = _qnli(tmp_path / "QNLI", n=40)
    a, b = (read_glue(folder, "qnli", seed=s) for s in (0, 1))
    assert _texts(a.test) == _texts(read_glue(folder, "qnli", seed=0).test)
    assert _texts(a.test) != _texts(b.test)
    assert np.bincount(a.test.arrays["label"]).tolist() == [2, 2]
    assert sorted(a.meta["lines"]["train"].tolist() + a.meta["lines"]["test"].tolist()) == list(range(2, 42))


def test_columns_are_found_by_header_name(tmp_path):
    folder = tmp_path / "QNLI"
    folder.mkdir()
    _tsv(folder / "train.tsv", ["label", "sentence", "index", "question"],
         [["not_entailment", f"s{i}", i, f"q{i}"] for i in range(4)])
    _tsv(folder / "dev.tsv", ["index", "question", "sentence", "label"], [[0, "q", "s", "entailment"]])
    td = read_glue(folder, "qnli", test_fraction=0.25)
    assert sorted(_texts(td.train) + _texts(td.test)) == [f"q{i} [SEP] s{i}" for i in range(4)]
    assert set(td.train.arrays["label"].tolist()) == {1}


def test_bad_rows_name_the_file_and_line(tmp_path):
    folder = _sst2(tmp_path / "SST-2")
    lines = (folder / "train.tsv").read_text().splitlines()
    lines[3] += "\textra"
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.tsv: line 4: 3 tab-separated columns, but the header has 2"):
        read_glue(folder, "sst2")
    _tsv(folder / "train.tsv", ["sentence", "label"], [["fine", 0], ["odd", 2]])
    with pytest.raises(DataError, match=r"train\.tsv: line 3: label '2' is not a sst2 label \(0, 1\)"):
        read_glue(folder, "sst2")
    _tsv(folder / "train.tsv", ["text", "label"], [["fine", 0]])
    with pytest.raises(DataError, match=r"header lacks column\(s\) \['sentence'\]"):
        read_glue(folder, "sst2")
    other = _sst2(tmp_path / "other")
    (other / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"other/dev\.tsv: GLUE file not found"):
        read_glue(other, "sst2")


def test_unlabeled_test_files_are_readable_for_prediction(tmp_path):
    mnli = _mnli(tmp_path / "MNLI")
    assert read_glue_unlabeled(mnli, "mnli") == [f"matched test premise {i} [SEP] test hypothesis {i}" for i in range(3)]
    assert read_glue_unlabeled(mnli, "mnli", mnli_test="mismatched")[2] == "mismatched test premise 2 [SEP] test hypothesis 2"
    sst = _sst2(tmp_path / "SST-2")
    assert read_glue_unlabeled(sst / "test.tsv", "sst2") == [f"test film {i}" for i in range(3)]
    assert read_glue_unlabeled(sst / "dev.tsv", "sst2")[0] == "dev film 0"  # labels ignored
    assert read_glue_file(sst / "test.tsv", "sst2", labelled=False).labels is None
    with pytest.raises(DataError, match=r"header lacks column\(s\) \['label'\]"):
        read_glue_file(sst / "test.tsv", "sst2")


def test_a_glue_task_in_a_config_is_built_and_tokenised(tmp_path):
    folder = _qqp(tmp_path / "QQP", n=20)
    raw = {"tasks": [{"name": "qqp", "source": {"kind": "glue", "glue_task": "qqp", "path": str(folder)}}],
           "model": {"encoders": {"text": {"max_len": 12, "vocab_size": 120}}}}
    data, tok = build_all_task_data(config_from_dict(raw))
    td = data["qqp"]
    assert tok is not None and td.name == "qqp" and td.class_names == ["not_duplicate", "duplicate"]
    ids = td.train.arrays["text"]
    assert ids.shape == (len(td.train), 12) and ids.dtype == np.int64
    sep = tok.encode(["[SEP]"], 4)[0, 0]
    assert (ids == sep).any(axis=1).all()  # every pair keeps its separator token
    with pytest.raises(ConfigError, match=r"tasks\[q\]\.source\.glue_task: a glue source needs `glue_task`"):
        config_from_dict({"tasks": [{"name": "q", "source": {"kind": "glue", "path": "x"}}]})


def test_cotrain_info_shows_a_glue_task_from_the_config_alone(tmp_path):
    from cotrain.info import describe

    raw = {"tasks": [{"name": "mnli", "source": {"kind": "glue", "glue_task": "mnli", "path": str(tmp_path / "absent")}}],
           "model": {"dim": 16, "depth": 1, "num_heads": 2, "encoders": {"text": {"vocab_size": 64}}}}
    row = next(line for line in describe(config_from_dict(raw)).splitlines() if line.strip().startswith("mnli"))
    assert row.split()[1:5] == ["text", "mnli", "(classify)", "3"] and "glue:" in row


def test_train_on_mnli_then_predict_its_unlabelled_test_file_from_the_cli(tmp_path, capsys):
    import yaml

    from cotrain.cli import main

    folder = _mnli(tmp_path / "MNLI", n=24)
    cfg = tmp_path / "mnli.yaml"
    cfg.write_text(yaml.safe_dump({
        "tasks": [{"name": "mnli", "batch_size": 8, "source": {"kind": "glue", "glue_task": "mnli", "path": str(folder)}}],
        "model": {"dim": 16, "depth": 1, "num_heads": 2, "encoders": {"text": {"max_len": 24, "vocab_size": 80}}},
        "run": {"steps": 4, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 4, "checkpoint_every": 4, "threads": 1},
    }))
    assert main(["train", str(cfg), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--task", "mnli", "--glue-tsv", str(folder / "test_matched.tsv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("matched test premise 0 [SEP] test hypothesis 0\t")
    assert all(line.split("\t")[1] in MNLI_LABELS for line in lines)
