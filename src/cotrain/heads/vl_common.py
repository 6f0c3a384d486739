"""Pieces the vision-and-language heads share: ViLBERT's two-layer classifier and batch checks."""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.layers import init_vit_weights


class SimpleClassifier(nn.Module):
    """12-in-1's ``SimpleClassifier``: ``[..., in_dim] -> [..., out_dim]`` by
    (dropout) → Linear(in_dim, hidden) → GELU → LayerNorm → Linear(hidden, out_dim)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"a classifier needs at least one output, got {out_dim}")
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, out_dim))
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.drop(x))


def get_label(batch: dict[str, torch.Tensor], head: str) -> torch.Tensor:
    """``batch["label"]``, or a KeyError naming the head and the keys the batch has."""
    if "label" not in batch:
        raise KeyError(f"the {head} head needs batch['label']; the batch has {sorted(batch)}")
    return batch["label"]


def class_ids(label: torch.Tensor, logits: torch.Tensor, head: str) -> torch.Tensor:
    """Check int class ids ``[B]`` for logits ``[B, C]`` and return them as int64."""
    if label.is_floating_point() or label.dtype == torch.bool:
        raise TypeError(f"the {head} head needs int64 class ids as label, got {label.dtype}")
    if label.shape != logits.shape[:1]:
        raise ValueError(f"the {head} head needs label [B] = [{logits.shape[0]}], got {tuple(label.shape)}")
    return label.long()


def single_view(out, head: str) -> None:
    """Refuse a batch with a view axis (K images per example) for a one-image head."""
    if out.views:
        raise ValueError(f"the {head} head takes one image per example, got K = {out.views} views")


def float_targets(batch: dict[str, torch.Tensor], logits: torch.Tensor, head: str, what: str) -> torch.Tensor:
    """``batch["label"]`` as float targets of ``logits``' shape (``what`` names them in the error)."""
    target = get_label(batch, head)
    if target.shape != logits.shape or not target.is_floating_point():
        raise ValueError(
            f"the {head} head needs float {what} label {tuple(logits.shape)}, got {target.dtype} {tuple(target.shape)}"
        )
    return target
