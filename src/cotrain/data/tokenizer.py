"""WordPiece tokenizer (BERT normalisation and pre-tokenisation) on the Hugging Face ``tokenizers``
library: trained from data or read from a ``vocab.txt`` / a local BERT-style checkpoint folder.

``encode`` returns word pieces only - no ``[CLS]`` / ``[SEP]`` added, the text encoder adds its own
class token - truncated to ``max_len`` and padded with ``[PAD]`` = 0. A special token written in the
text stays one token with its id, before any lowercasing: a sentence pair is ``"first [SEP] second"``.

For a pretrained BERT-family encoder (``model.encoders.text.pretrained``) the tokenizer has
``bert_specials``: ``encode`` gives ``[CLS] pieces [SEP]`` as the checkpoint's own tokenizer does
(``AutoTokenizer(folder)(text, truncation=True, max_length=max_len, padding="max_length")``: the
word pieces are cut to ``max_len - 2``), so ``"a [SEP] b"`` becomes ``[CLS] a [SEP] b [SEP]``, the
ids of the pair ``(a, b)``. The checkpoint's ``[CLS]`` leads and the encoder adds no token.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cotrain.data.errors import DataError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # ids 0..4 in a vocabulary built from data
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
VOCAB_FILE = "vocab.txt"


class WordPieceTokenizer:
    """Text ↔ WordPiece ids with a fixed vocabulary (``[PAD]`` must be id 0, ``[UNK]`` must exist)."""

    def __init__(
        self, vocab: dict[str, int], *, lowercase: bool = True, source: str | None = None, bert_specials: bool = False
    ) -> None:
        from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

        where = source or "<vocabulary>"
        if not vocab:
            raise DataError("empty vocabulary", where)
        if vocab.get(PAD) != 0:
            got = "absent" if PAD not in vocab else f"id {vocab[PAD]}"
            raise DataError(f"{PAD} must be token id 0 (padding), but it is {got}", where)
        if UNK not in vocab:
            raise DataError(f"vocabulary has no {UNK} token", where)
        if bert_specials and (CLS not in vocab or SEP not in vocab):
            raise DataError(f"vocabulary lacks {CLS} or {SEP}, which a pretrained BERT-family encoder needs", where)
        self.lowercase = bool(lowercase)
        self.bert_specials = bool(bert_specials)
        self.source = source
        self._vocab = dict(vocab)
        self._size = max(vocab.values()) + 1
        tok = Tokenizer(models.WordPiece(vocab=self._vocab, unk_token=UNK, max_input_chars_per_word=100))
        # BertNormalizer with strip_accents=None strips accents iff lowercasing (as BERT does).
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=self.lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        present = [t for t in SPECIAL_TOKENS if t in vocab]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])
        self._tok = tok

    # ------------------------------------------------------------------------------- building
    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, *, lowercase: bool = True, min_frequency: int = 2
    ) -> "WordPieceTokenizer":
        """Learn a WordPiece vocabulary of at most ``vocab_size`` entries from ``texts``.

        Special tokens come first ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4), then the
        characters (word-initial ``c`` and continuation ``##c``), then merged pieces in merge order.
        The result depends only on the texts (see :func:`learn_wordpiece_vocab`). Special tokens
        written in the texts (``"premise [SEP] hypothesis"``) are not learnt as words: ``encode``
        keeps each as its one id, whatever the case setting.
        """
        from tokenizers import normalizers, pre_tokenizers

        normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
        )
        pre = pre_tokenizers.BertPreTokenizer()
        counts: Counter[str] = Counter()
        chunk: list[str] = []

        def flush() -> None:
            # Normalisation is per character and words never span whitespace, so a chunk of texts
            # joined by newlines yields the same words as the texts one by one, in far fewer calls.
            counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str("\n".join(chunk))))
            chunk.clear()

        for text in texts:
            chunk.append(_SPECIAL_RE.sub(" ", str(text)))
            if len(chunk) >= 1024:
                flush()
        if chunk:
            flush()
        if not counts:
            raise DataError("cannot build a vocabulary: no training texts")
        tokens = learn_wordpiece_vocab(counts, vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=min_frequency)
        return cls({t: i for i, t in enumerate(tokens)}, lowercase=lowercase, source="<built from data>")

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, lowercase: bool = True, bert_specials: bool = False
    ) -> "WordPieceTokenizer":
        """Read a ``vocab.txt`` (one token per line, id = line number) or a folder holding one
        (a local Hugging Face BERT-style checkpoint). ``bert_specials``: ``encode`` adds
        ``[CLS]`` / ``[SEP]`` (module docstring)."""
        p = Path(path).expanduser()
        if p.is_dir():
            vf = p / VOCAB_FILE
            if not vf.is_file():
                raise DataError(
                    f"folder has no {VOCAB_FILE}: only WordPiece (BERT-style) vocabularies are supported", p
                )
            _warn_case_mismatch(p, lowercase)
            p = vf
        elif not p.is_file():
            raise DataError("vocabulary not found: expected a vocab.txt file or a checkpoint folder with one", p)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read vocabulary: {err}", p) from err
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        vocab: dict[str, int] = {}
        for i, line in enumerate(lines):
            token = line.rstrip("\r")
            if token == "":
                raise DataError(f"line {i + 1}: empty token in vocabulary", p)
            vocab[token] = i  # a repeated token keeps its last id (as transformers' BertTokenizer)
        return cls(vocab, lowercase=lowercase, source=str(p), bert_specials=bert_specials)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``vocab.txt`` (one token per line in id order); ``path`` may be a folder. Returns
        the file written."""
        p = Path(path)
        if p.is_dir():
            p = p / VOCAB_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        tokens = [f"[unused_gap{i}]" for i in range(self._size)]  # ids no token owns (repeated lines)
        for t, i in self._vocab.items():
            tokens[i] = t
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        os.replace(tmp, p)
        return p

    # ------------------------------------------------------------------------------- use
    @property
    def vocab_size(self) -> int:
        """Size of an embedding table for these ids (max id + 1)."""
        return self._size

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return self._vocab[UNK]

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def encode(self, texts: Sequence[str] | str, max_len: int) -> np.ndarray:
        """int64 ``[N, max_len]`` word-piece ids, truncated, padded with 0: no [CLS]/[SEP], or
        ``[CLS] pieces [SEP]`` with ``bert_specials`` (pieces cut to ``max_len - 2``)."""
        wrap = self.bert_specials
        if max_len < (2 if wrap else 1):
            raise ValueError(f"max_len must be >= {2 if wrap else 1}, got {max_len}")
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        if not texts:
            return out
        for row, enc in enumerate(self._tok.encode_batch(texts, add_special_tokens=False)):
            ids = [self._vocab[CLS], *enc.ids[: max_len - 2], self._vocab[SEP]] if wrap else enc.ids[:max_len]
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids) -> str | list[str]:
        """Ids → text (padding and special tokens dropped, word pieces joined). A 2-D input gives a
        list of strings."""
        arr = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids, dtype=np.int64)
        if arr.ndim == 2:
            return [self.decode(r) for r in arr]
        seq = [int(i) for i in arr.reshape(-1) if i != 0]
        return self._tok.decode(seq, skip_special_tokens=True)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        specials = ", bert_specials=True" if self.bert_specials else ""
        return f"WordPieceTokenizer(vocab_size={self._size}, lowercase={self.lowercase}, source={self.source!r}{specials})"


def learn_wordpiece_vocab(
    word_counts: dict[str, int],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    min_frequency: int = 2,
    max_word_chars: int = 100,
) -> list[str]:
    """A WordPiece vocabulary (tokens in id order) learnt by greedy pair merging, as BERT's
    WordPiece trainers do, but deterministic.

    Each word starts as characters (``c``, then ``##c``); the most frequent adjacent pair (ties:
    the lexicographically smallest pair) is merged into a new piece until the vocabulary holds
    ``vocab_size`` tokens or no pair occurs ``min_frequency`` times. When the characters alone exceed
    the budget the most frequent ones are kept (the others encode as [UNK]).

    The Hugging Face ``WordPieceTrainer`` is not used because its tie-breaking follows hash-map order:
    the same texts give different vocabularies in different processes, which would break resuming
    and make ranks of a distributed run disagree.
    """
    vocab: dict[str, int] = {}
    for t in special_tokens:
        vocab.setdefault(t, len(vocab))
    words = sorted((w, c) for w, c in word_counts.items() if 0 < len(w) <= max_word_chars and c > 0)
    seqs = [[w[0]] + ["##" + ch for ch in w[1:]] for w, _ in words]
    freq = [c for _, c in words]

    sym_count: Counter[str] = Counter()
    for seq, c in zip(seqs, freq):
        for sym in seq:
            sym_count[sym] += c
    alphabet = sorted(sym_count, key=lambda t: (-sym_count[t], t))[: max(0, vocab_size - len(vocab))]
    for t in sorted(alphabet):
        vocab.setdefault(t, len(vocab))

    pair_count: dict[tuple[str, str], int] = {}
    pair_words: dict[tuple[str, str], set[int]] = {}

    def pairs_of(seq: list[str]):
        return [(a, b) for a, b in zip(seq, seq[1:]) if a in vocab and b in vocab]

    for i, seq in enumerate(seqs):
        for p in pairs_of(seq):
            pair_count[p] = pair_count.get(p, 0) + freq[i]
            pair_words.setdefault(p, set()).add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:
            continue  # stale entry
        if -neg < min_frequency:
            break
        a, b = pair
        merged = a + (b[2:] if b.startswith("##") else b)
        vocab.setdefault(merged, len(vocab))
        changed: set[tuple[str, str]] = set()
        for i in sorted(pair_words.pop(pair, ())):
            seq, c = seqs[i], freq[i]
            old = pairs_of(seq)
            new_seq, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == a and seq[j + 1] == b:
                    new_seq.append(merged)
                    j += 2
                else:
                    new_seq.append(seq[j])
                    j += 1
            seqs[i] = new_seq
            new = pairs_of(new_seq)
            for p in old:
                pair_count[p] -= c
                changed.add(p)
            for p in new:
                pair_count[p] = pair_count.get(p, 0) + c
                changed.add(p)
            for p in set(old) - set(new):
                if p != pair:
                    pair_words.get(p, set()).discard(i)
            for p in set(new):
                pair_words.setdefault(p, set()).add(i)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
                pair_words.pop(p, None)
    return sorted(vocab, key=vocab.get)


def _warn_case_mismatch(folder: Path, lowercase: bool) -> None:
    cfg = folder / "tokenizer_config.json"
    if not cfg.is_file():
        return
    try:
        do_lower = json.loads(cfg.read_text(encoding="utf-8")).get("do_lower_case")
    except (OSError, ValueError):
        return
    if isinstance(do_lower, bool) and do_lower != lowercase:
        warnings.warn(
            f"{cfg}: do_lower_case={do_lower} but the text encoder config has lowercase={lowercase}; "
            "ids will differ from the checkpoint's own tokenizer",
            stacklevel=3,
        )


def build_tokenizer(cfg, texts: Iterable[str] | None = None) -> WordPieceTokenizer:
    """A tokenizer from a :class:`~cotrain.config.TextEncoderConfig`: ``cfg.vocab`` (a vocab.txt
    or a checkpoint folder) when set, otherwise a vocabulary of ``cfg.vocab_size`` trained on
    ``texts``. With ``cfg.pretrained`` (a checkpoint folder): its vocabulary with ``bert_specials``;
    a ``cfg.vocab`` given too (a run's saved vocab.txt) must hold the same tokens and ids."""
    if cfg.pretrained is not None:
        from cotrain.encoders.pretrained_text import pretrained_folder

        own = WordPieceTokenizer.load(pretrained_folder(cfg.pretrained), lowercase=cfg.lowercase, bert_specials=True)
        if cfg.vocab is None:
            return own
        given = WordPieceTokenizer.load(cfg.vocab, lowercase=cfg.lowercase, bert_specials=True)
        if given.get_vocab() != own.get_vocab():
            from ..config import ConfigError

            mine, theirs = given.get_vocab(), own.get_vocab()
            diff = sorted(set(mine.items()) ^ set(theirs.items()), key=lambda kv: kv[1])[:3]
            raise ConfigError(
                f"model.encoders.text.vocab ({cfg.vocab}, {len(mine)} tokens) and the vocabulary of "
                f"model.encoders.text.pretrained ({cfg.pretrained}, {len(theirs)} tokens) differ (e.g. "
                f"{', '.join(f'{t!r}={i}' for t, i in diff)}); leave vocab unset to use the checkpoint's"
            )
        return given
    if cfg.vocab is not None:
        return WordPieceTokenizer.load(cfg.vocab, lowercase=cfg.lowercase)
    if texts is None:
        raise DataError("text encoder has no `vocab` and no texts were given to build one from")
    return WordPieceTokenizer.train(texts, cfg.vocab_size, lowercase=cfg.lowercase)
