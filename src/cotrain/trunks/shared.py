"""PolyViT's shared trunk: one pre-LN transformer for every modality, whose first ``l_adapt``
layers are modality-specific (they *replace* shared layers; total depth stays ``depth``)."""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.layers import Block, key_padding_to_attn_mask


class SharedTrunk(nn.Module):
    """``forward(tokens [B, L, D], mask [B, L] or None, modality) -> [B, L, D]`` (final LayerNorm).

    Layer ``i`` has drop-path rate ``drop_path * i / (depth - 1)`` (linear from 0). Layers
    ``0 .. l_adapt-1`` come from ``adapters[modality]``, layers ``l_adapt .. depth-1`` from
    ``shared``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        l_adapt: int = 0,
        modalities: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        if not 0 <= l_adapt <= depth:
            raise ValueError(f"l_adapt ({l_adapt}) must be between 0 and depth ({depth})")
        if l_adapt and not modalities:
            raise ValueError("l_adapt > 0 needs the list of modalities the trunk serves")
        self.dim, self.depth, self.l_adapt = dim, depth, l_adapt
        self.modalities = tuple(modalities)
        self.drop_path_rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]

        def block(i: int) -> Block:
            return Block(dim, num_heads, mlp_ratio, dropout, self.drop_path_rates[i])

        self.adapters = nn.ModuleDict({m: nn.ModuleList([block(i) for i in range(l_adapt)]) for m in self.modalities})
        self.shared = nn.ModuleList([block(i) for i in range(l_adapt, depth)])
        self.norm = nn.LayerNorm(dim)

    def layers(self, modality: str) -> list[Block]:
        """The ``depth`` blocks a ``modality`` input goes through, in order."""
        if modality not in self.adapters:
            if self.l_adapt == 0 and not self.modalities:
                return list(self.shared)
            raise ValueError(f"the trunk has no layers for modality {modality!r}; it has {list(self.modalities)}")
        return [*self.adapters[modality], *self.shared]

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, modality: str) -> torch.Tensor:
        attn_mask = key_padding_to_attn_mask(mask)
        x = tokens
        for blk in self.layers(modality):
            x = blk(x, attn_mask)
        return self.norm(x)
