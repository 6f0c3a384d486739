"""Classification heads: pooling → (dropout) → linear or Linear-GELU-Linear → logits.

``classify``: softmax cross-entropy on int64 class ids ``[B]``.
``multilabel``: per-class sigmoid binary cross-entropy on float targets ``[B, C]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import HeadConfig
from cotrain.trunks.layers import init_vit_weights


def pool_tokens(tokens: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """``[B, L, D]`` → ``[B, D]``. ``cls``: token 0. ``mean``: mean over real tokens 1..L-1 (the
    class token and padding excluded; an example with no real token pools to zeros)."""
    if how == "cls":
        return tokens[:, 0]
    if how == "mean":
        rest = tokens[:, 1:]
        if mask is None:
            return rest.mean(dim=1)
        weights = mask[:, 1:, None].to(rest.dtype)
        return (rest * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    raise ValueError(f"unknown pooling {how!r}; use 'cls' or 'mean'")


class ClassifyHead(nn.Module):
    """``forward(tokens [B, L, D], mask [B, L] or None) -> logits [B, C]``."""

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a head needs at least one class, got {num_classes}")
        self.cfg = cfg
        self.type = cfg.type
        self.pool = cfg.pool
        self.num_classes = num_classes
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        if cfg.mlp:
            hidden = cfg.hidden or dim
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes))
        else:
            self.mlp = nn.Linear(dim, num_classes)
        self.apply(init_vit_weights)
        last = self.mlp[-1] if cfg.mlp else self.mlp
        # a small classifier (std .02): the first prediction is near uniform, yet gradients reach the
        # trunk from step 0 (a zero-initialised one, as in ViT, left single-task digits at chance
        # after 500 steps here: 0.11 vs 0.74)
        nn.init.trunc_normal_(last.weight, std=0.02, a=-0.04, b=0.04)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.drop(pool_tokens(tokens, mask, self.pool)))

    def losses(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.type == "classify":
            if target.is_floating_point():
                raise TypeError(f"a classify head needs int64 class ids as targets, got {target.dtype}")
            return {"ce": F.cross_entropy(logits, target.long())}
        if target.shape != logits.shape:
            raise ValueError(
                f"a multilabel head needs float targets of shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        return {"bce": F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities: softmax over classes (classify) or per-class sigmoid (multilabel)."""
        return logits.softmax(dim=-1) if self.type == "classify" else logits.sigmoid()

    def extra_repr(self) -> str:
        return f"type={self.type}, pool={self.pool}, num_classes={self.num_classes}"
