"""Modality encoders: one raw input → ``(tokens [B, 1+N, D], mask [B, 1+N] or None)``."""

from __future__ import annotations

from torch import nn

from cotrain.config import EncodersConfig
from cotrain.modalities.audio import AudioEncoder, mel_filterbank
from cotrain.modalities.common import TokenEncoder, resample_pos_embed
from cotrain.modalities.image import ImageEncoder
from cotrain.modalities.text import TextEncoder
from cotrain.modalities.video import VideoEncoder

ENCODERS: dict[str, type[TokenEncoder]] = {
    "image": ImageEncoder,
    "video": VideoEncoder,
    "audio": AudioEncoder,
    "text": TextEncoder,
}


def build_encoder(modality: str, cfg, dim: int, *, vocab_size: int | None = None, dropout: float = 0.0) -> nn.Module:
    """The encoder for ``modality``. ``cfg`` is that modality's section of :class:`EncodersConfig`
    (the whole ``EncodersConfig`` is accepted too). Text needs ``vocab_size``."""
    if modality not in ENCODERS:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(ENCODERS)}")
    if isinstance(cfg, EncodersConfig):
        cfg = getattr(cfg, modality)
    if modality == "text":
        if vocab_size is None:
            raise ValueError("the text encoder needs vocab_size (the size of the task's vocabulary)")
        return TextEncoder(cfg, dim, vocab_size, dropout=dropout)
    return ENCODERS[modality](cfg, dim, dropout=dropout)


__all__ = [
    "ENCODERS",
    "AudioEncoder",
    "ImageEncoder",
    "TextEncoder",
    "TokenEncoder",
    "VideoEncoder",
    "build_encoder",
    "mel_filterbank",
    "resample_pos_embed",
]
