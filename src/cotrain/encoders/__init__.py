"""Encoders: one per input kind, from ONE table (:data:`ENCODERS`). Each turns its batch arrays into
:class:`~cotrain.trunks.output.Tokens` ``(x [B, 1+N, D], mask [B, 1+N])``, its own first token
(class token / ``IMG``) leading.

| kind | batch keys (one example) | encoder |
| --- | --- | --- |
| ``image`` | ``image`` uint8 ``[3, H, W]`` (+ ``image_mask`` bool ``[H, W]``, True = real pixel) | 2-D patches (ViT), a conv stem, or a conv backbone (UniT) |
| ``video`` | ``video`` uint8 ``[T, 3, H, W]`` | 3-D tubelets (ViViT) |
| ``audio`` | ``audio`` float32 ``[S]`` | log-mel spectrogram patches (AST) |
| ``text`` | ``text`` int64 ``[L]`` (0 = pad) | token embeddings (WordPiece), or a pretrained BERT-family model |
| ``regions`` | ``regions`` ``[R, F]``, ``boxes`` ``[R, 4]``, ``region_mask`` ``[R]`` | ViLBERT's region embedding |

A batch may carry a view axis after the batch one (``[B, K, ...]``: NLVR2's two images, retrieval
training's K candidates); :func:`views_of` finds it from the rank of the main key.

An encoder with ``takes_task_ids = True`` (:class:`PretrainedTextEncoder`, UniT's task embedding)
also gets ``task_ids [B]`` (``encode(..., task_ids=)``); builders get the model's number of task
tokens (``num_task_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from cotrain.config import ConfigError, EncodersConfig
from cotrain.encoders.audio import AudioEncoder, mel_filterbank
from cotrain.encoders.backbone import BackboneImageEncoder
from cotrain.encoders.common import TokenEncoder, resample_pos_embed
from cotrain.encoders.image import ImageEncoder
from cotrain.encoders.pretrained_text import PretrainedTextEncoder
from cotrain.encoders.regions import RegionEncoder
from cotrain.encoders.text import TextEncoder
from cotrain.encoders.video import VideoEncoder
from cotrain.errors import InputError
from cotrain.trunks.output import Tokens


@dataclass(frozen=True)
class EncoderEntry:
    build: Callable[..., nn.Module]  # (encoders cfg, dim, vocab_size, region_dim, dropout, num_task_tokens) -> module
    keys: tuple[str, ...]  # batch keys it reads, the main one first; later ones optional
    example_ndim: int  # rank of one example of the main key
    layout: str  # the batch layout, for messages


def _text(cfg, dim, vocab_size, region_dim, dropout, num_task_tokens=0):
    t = cfg.text
    if t.pretrained is not None:
        enc = PretrainedTextEncoder(t.pretrained, dim, num_task_tokens, cls_only=t.cls_only, freeze=t.freeze,
                                    dropout=dropout)
        if t.max_len > enc.max_len:
            raise ConfigError(f"model.encoders.text.max_len is {t.max_len} but the checkpoint {t.pretrained} "
                              f"has positions for {enc.max_len} tokens (max_position_embeddings)")
        if vocab_size is not None and vocab_size > enc.vocab_size:
            raise ConfigError(f"the tokenizer has {vocab_size} ids but the checkpoint {t.pretrained} embeds "
                              f"{enc.vocab_size}: model.encoders.text.vocab does not belong to it")
        return enc
    if vocab_size is None:
        raise ConfigError("the text encoder needs the vocabulary size (a tokenizer) to be built")
    return TextEncoder(t, dim, vocab_size, dropout)


def _regions(cfg, dim, vocab_size, region_dim, dropout, num_task_tokens=0):
    given = cfg.regions.feature_dim
    if given is None and region_dim is None:
        raise ConfigError("the region feature size is unknown: set model.encoders.regions.feature_dim "
                          "(or load the data, which gives it)")
    if given is not None and region_dim is not None and given != region_dim:
        raise ConfigError(f"model.encoders.regions.feature_dim is {given} but the data's region features have {region_dim}")
    return RegionEncoder(cfg.regions, given or region_dim, dim, dropout)


def _image(cfg, dim, vocab_size, region_dim, dropout, num_task_tokens=0):
    if cfg.image.stem == "backbone":
        return BackboneImageEncoder(cfg.image, dim, dropout)
    return ImageEncoder(cfg.image, dim, dropout)


ENCODERS: dict[str, EncoderEntry] = {
    "image": EncoderEntry(_image, ("image", "image_mask"), 3, "[B, 3, H, W] (+ image_mask [B, H, W])"),
    "video": EncoderEntry(lambda c, d, v, r, p, t=0: VideoEncoder(c.video, d, p), ("video",), 4, "[B, T, 3, H, W]"),
    "audio": EncoderEntry(lambda c, d, v, r, p, t=0: AudioEncoder(c.audio, d, p), ("audio",), 1, "[B, S]"),
    "text": EncoderEntry(_text, ("text",), 1, "[B, L] token ids"),
    "regions": EncoderEntry(_regions, ("regions", "boxes", "region_mask"), 2, "[B, R, F] (+ boxes [B, R, 4])"),
}
INPUT_KINDS = tuple(ENCODERS)


def entry(kind: str) -> EncoderEntry:
    if kind not in ENCODERS:
        raise ConfigError(f"unknown input kind {kind!r}; known: {list(ENCODERS)}")
    return ENCODERS[kind]


def build_encoder(kind: str, cfg: EncodersConfig, dim: int, *, vocab_size: int | None = None,
                  region_dim: int | None = None, dropout: float = 0.0, num_task_tokens: int = 0) -> nn.Module:
    """The encoder of input ``kind`` (``cfg`` is ``model.encoders``); ``num_task_tokens``: the
    model's task count, for encoders with a task embedding."""
    return entry(kind).build(cfg, dim, vocab_size, region_dim, dropout, num_task_tokens)


def views_of(kind: str, batch: dict[str, torch.Tensor]) -> int:
    """K when ``batch``'s arrays of ``kind`` carry a view axis ``[B, K, ...]``, else 0."""
    e = entry(kind)
    main = e.keys[0]
    if main not in batch:
        raise InputError(f"input {kind!r} reads batch[{main!r}] {e.layout}; the batch has {sorted(batch)}")
    ndim = batch[main].dim()
    if ndim == e.example_ndim + 1:
        return 0
    if ndim == e.example_ndim + 2:
        return int(batch[main].shape[1])
    raise InputError(f"batch[{main!r}] must be {e.layout} (or with a view axis after B); got {tuple(batch[main].shape)}")


def encode(encoder: nn.Module, kind: str, batch: dict[str, torch.Tensor], views: int = 0,
           task_ids: torch.Tensor | None = None) -> Tokens:
    """Run ``encoder`` on its batch arrays (a view axis flattened into the batch: ``B·K`` rows).
    ``task_ids [B]`` go to an encoder with ``takes_task_ids`` (repeated per view), no other."""
    args = []
    for i, key in enumerate(entry(kind).keys):
        value = batch.get(key)
        if value is None and i == 0:
            raise InputError(f"input {kind!r} reads batch[{key!r}]; the batch has {sorted(batch)}")
        if value is not None and views:
            value = value.flatten(0, 1)
        args.append(value)
    if task_ids is not None and getattr(encoder, "takes_task_ids", False):
        x, mask = encoder(*args, task_ids=task_ids.repeat_interleave(views, 0) if views else task_ids)
    else:
        x, mask = encoder(*args)
    return Tokens(x, mask)


__all__ = [
    "ENCODERS", "INPUT_KINDS", "AudioEncoder", "BackboneImageEncoder", "EncoderEntry", "ImageEncoder",
    "PretrainedTextEncoder", "RegionEncoder", "TextEncoder",
    "TokenEncoder", "VideoEncoder", "build_encoder", "encode", "entry", "mel_filterbank", "resample_pos_embed",
    "views_of",
]
