"""A DETR-style transformer decoder (pre-LN, fused SDPA): learned queries read an encoded memory.

One layer, for query states ``x [B, Q, D]`` with the query positional embedding ``pos [B, Q, D]``
and a memory ``m [B, M, D]`` with its key-padding mask ``[B, M]``::

    h = LN1(x);  x = x + dp(SelfAttn(q = h + pos, k = h + pos, v = h))
    x = x + dp(CrossAttn(q = LN2(x) + pos, k = v = m, m_mask))
    x = x + dp(Mlp(LN3(x)))

as DETR's pre-norm decoder layer (the position is added to the queries and keys of the
self-attention and to the queries of the cross-attention, at every layer). The memory carries its
own positions already (the encoders add them to their tokens). :class:`Decoder` runs its layers
from query states of zero and returns the states after EVERY layer, each through the decoder's
final LayerNorm: ``[L, B, Q, D]`` (DETR's ``return_intermediate``; the last is the output).
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.crossattn import CrossAttention
from cotrain.trunks.layers import DropPath, Mlp, MultiHeadBase, init_vit_weights


class QueryAttention(MultiHeadBase):
    """Self-attention whose queries and keys see ``x + pos`` and whose values see ``x``:
    ``(x [B, Q, D], pos [B, Q, D]) -> [B, Q, D]``; every query attends to every query."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout)
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k = self.qk(x + pos).view(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        return self.attend(q, k, v, None)


class DecoderLayer(nn.Module):
    """``(x [B, Q, D], pos [B, Q, D], memory [B, M, D], memory_mask [B, M] or None) -> [B, Q, D]``."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = QueryAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads, dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, max(1, int(round(dim * mlp_ratio))), dropout)
        self.drop_path = DropPath(drop_path)
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.self_attn(self.norm1(x), pos))
        x = x + self.drop_path(self.cross_attn(self.norm2(x) + pos, memory, memory_mask))
        return x + self.drop_path(self.mlp(self.norm3(x)))


class Decoder(nn.Module):
    """``depth`` :class:`DecoderLayer` s and the final LayerNorm. ``forward(pos [B, Q, D], memory
    [B, M, D], memory_mask [B, M] or None) -> [depth, B, Q, D]``: the queries start at zero (their
    content is learned through the layers; ``pos`` is the learned query embedding), layer ``i`` has
    drop-path rate ``drop_path * i / (depth - 1)``."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"a decoder needs at least one layer, got {depth}")
        rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.layers = nn.ModuleList([DecoderLayer(dim, num_heads, mlp_ratio, dropout, r) for r in rates])
        self.norm = nn.LayerNorm(dim)

    def forward(self, pos: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        if pos.dim() != 3 or memory.dim() != 3 or pos.shape[0] != memory.shape[0]:
            raise ValueError(f"queries must be [B, Q, D] and memory [B, M, D] of one batch, got {tuple(pos.shape)} "
                             f"and {tuple(memory.shape)}")
        x = torch.zeros_like(pos)
        out = []
        for layer in self.layers:
            x = layer(x, pos, memory, memory_mask)
            out.append(self.norm(x))
        return torch.stack(out)


__all__ = ["Decoder", "DecoderLayer", "QueryAttention"]
