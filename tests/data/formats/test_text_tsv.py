"""read_text_tsv with a vocabulary built from the file's texts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cotrain.config import TextEncoderConfig
from cotrain.data.errors import DataError
from cotrain.data.formats.text_tsv import read_text_tsv, read_tsv_rows, read_tsv_texts
from cotrain.data.tokenizer import build_tokenizer

POS = ["a lovely sunny day", "what a great film", "i love this place", "wonderful happy ending"]
NEG = ["a dreadful rainy day", "what an awful film", "i hate this place", "terrible sad ending"]


def _tokenizer(texts=POS + NEG):
    return build_tokenizer(TextEncoderConfig(vocab_size=200), texts)


def _write(path, lines, header=True):
    body = ("text\tlabel\n" if header else "") + "".join(line + "\n" for line in lines)
    path.write_text(body, encoding="utf-8")
    return path


def _rows(n=10):
    return [f"{POS[i % 4]} number {i}\tpositive" for i in range(n)] + [
        f"{NEG[i % 4]} number {i}\tnegative" for i in range(n)
    ]


def test_basic_file_shapes_labels_split(tmp_path):
    f = _write(tmp_path / "reviews.tsv", _rows())
    tok = _tokenizer()
    td = read_text_tsv(f, tokenizer=tok, max_len=6, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert td.name == "reviews" and td.inputs == ("text",)
    assert td.class_names == ["negative", "positive"]  # sorted strings
    assert (len(td.train), len(td.val), len(td.test)) == (14, 2, 4)
    for split in (td.train, td.val, td.test):
        x, y = split.arrays["text"], split.arrays["label"]
        assert x.dtype == np.int64 and x.shape[1:] == (6,) and y.dtype == np.int64
    assert np.bincount(td.train.arrays["label"]).tolist() == [7, 7]
    # the ids are the tokenizer's, row by row (lines recorded in meta)
    lines = ["text\tlabel"] + _rows()
    for row, lineno in zip(td.val.arrays["text"], td.meta["lines"]["val"]):
        text = lines[lineno - 1].split("\t")[0]
        np.testing.assert_array_equal(row, tok.encode([text], 6)[0])
    assert td.meta["lines"] == read_text_tsv(f, tokenizer=tok, max_len=6, val_fraction=0.1, test_fraction=0.2).meta["lines"]


def test_padding_with_zero_and_no_header(tmp_path):
    f = _write(tmp_path / "short.tsv", ["hi\ta", "love\tb", "", "hate this\ta", "day\tb"], header=False)
    tok = _tokenizer(["hi love hate this day"] * 3)
    td = read_text_tsv(f, tokenizer=tok, max_len=5, val_fraction=0.0, test_fraction=0.0)
    x = td.train.arrays["text"]
    assert x.shape == (4, 5)
    for row, text in zip(x, ["hi", "love", "hate this", "day"]):
        n = len(tok.tokenize(text))
        assert 1 <= n < 5 and (row[:n] != 0).all() and (row[n:] == 0).all()
    assert td.train.arrays["label"].tolist() == [0, 1, 0, 1]


def test_split_column(tmp_path):
    lines = [f"{t}\tpos\ttrain" for t in POS] + [f"{t}\tneg\ttrain" for t in NEG]
    lines += ["great day\tpos\tvalidation", "awful day\tneg\tval"]
    f = _write(tmp_path / "with_split.tsv", lines, header=False)
    td = read_text_tsv(f, tokenizer=_tokenizer(), max_len=8, test_fraction=0.25)
    assert td.meta["layout"] == "split_column"
    assert len(td.val) == 2 and td.val.arrays["label"].tolist() == [1, 0]
    assert (len(td.train), len(td.test)) == (6, 2)  # test carved 1 of 4 per class from train
    # header with split column, and all three splits given
    g = tmp_path / "all_three.tsv"
    g.write_text("text\tlabel\tsplit\nx y\tp\ttrain\nz\tq\ttrain\nx\tp\ttest\nz\tq\tval\n")
    td = read_text_tsv(g, tokenizer=_tokenizer(), max_len=4)
    assert (len(td.train), len(td.val), len(td.test)) == (2, 1, 1)


def test_train_texts_helper_matches_reader(tmp_path):
    f = _write(tmp_path / "reviews.tsv", _rows())
    texts = read_tsv_texts(f, val_fraction=0.1, test_fraction=0.2, seed=4)
    tok = _tokenizer(texts)
    td = read_text_tsv(f, tokenizer=tok, max_len=8, val_fraction=0.1, test_fraction=0.2, seed=4)
    np.testing.assert_array_equal(td.train.arrays["text"], tok.encode(texts, 8))
    assert len(read_tsv_rows(f)) == 20


# ------------------------------------------------------------------------------------ errors
def test_wrong_column_count_names_file_and_line(tmp_path):
    f = _write(tmp_path / "broken_cols.tsv", ["good text\tpos", "another\tneg", "no label column here"])
    with pytest.raises(DataError, match=re.escape("broken_cols.tsv") + ": line 4"):
        read_text_tsv(f, tokenizer=_tokenizer(), max_len=4)
    g = _write(tmp_path / "too_many.tsv", ["a\tb\ttrain", "c\td\ttrain\textra"], header=False)
    with pytest.raises(DataError, match=re.escape("too_many.tsv") + ": line 2"):
        read_text_tsv(g, tokenizer=_tokenizer(), max_len=4)


def test_val_label_absent_from_train(tmp_path):
    f = _write(tmp_path / "leaky.tsv", ["a\tp\ttrain", "b\tq\ttrain", "c\tr\tval"], header=False)
    with pytest.raises(DataError, match=re.escape("leaky.tsv") + r".*line 3.*'r'.*absent from the train"):
        read_text_tsv(f, tokenizer=_tokenizer(), max_len=4)


def test_bad_split_value_and_empty_label(tmp_path):
    f = _write(tmp_path / "odd_split.tsv", ["a\tp\ttrain", "b\tq\tholdout"], header=False)
    with pytest.raises(DataError, match=re.escape("odd_split.tsv") + ": line 2.*holdout"):
        read_text_tsv(f, tokenizer=_tokenizer(), max_len=4)
    g = _write(tmp_path / "no_label.tsv", ["a\tp", "b\t "])
    with pytest.raises(DataError, match=re.escape("no_label.tsv") + ": line 3: empty label"):
        read_text_tsv(g, tokenizer=_tokenizer(), max_len=4)


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="absent_file.tsv"):
        read_text_tsv(tmp_path / "absent_file.tsv", tokenizer=_tokenizer(), max_len=4)
    f = _write(tmp_path / "header_only.tsv", [])
    with pytest.raises(DataError, match="header_only.tsv.*no examples"):
        read_text_tsv(f, tokenizer=_tokenizer(), max_len=4)
