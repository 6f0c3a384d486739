"""Task heads: tokens from the trunk → logits, with their own loss and post-processing."""

from __future__ import annotations

from torch import nn

from cotrain.config import HeadConfig
from cotrain.heads.classify import ClassifyHead, pool_tokens

HEADS: dict[str, type[nn.Module]] = {
    "classify": ClassifyHead,
    "multilabel": ClassifyHead,
}


def build_head(cfg: HeadConfig, dim: int, num_classes: int) -> nn.Module:
    if cfg.type not in HEADS:
        raise ValueError(f"unknown head type {cfg.type!r}; known: {sorted(HEADS)}")
    return HEADS[cfg.type](cfg, dim, num_classes)


__all__ = ["HEADS", "ClassifyHead", "build_head", "pool_tokens"]
