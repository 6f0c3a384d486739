"""The two-stream co-attention trunk (ViLBERT, as multi-task trained by 12-in-1).

Layout with ``t_layers = T`` and ``v_layers = V`` (12-in-1: T = 12, V = 6)::

    text:   T - V text-only Blocks                        (independent of the image)
    then V rounds of:   visual Block,  text Block,  co-attention layer (v ↔ t)
    final:  LayerNorm per stream

So the text stream has T self-attention Blocks, the visual stream V, and there are V co-attention
layers. (ViLBERT's released code interleaves the same counts slightly differently — its first
co-attention comes straight after the text-only Blocks, before any visual Block, and the last
round ends with a visual and a text Block instead of a co-attention layer; the counts and the
text-only prefix are the same.)
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.crossattn import CoAttentionLayer
from cotrain.trunks.layers import Block, key_padding_to_attn_mask
from cotrain.trunks.vl_output import TaskTokens, VLOutput, check_streams, default_mask, prepare_text


class CoAttentionTrunk(nn.Module):
    """``forward(v [B, 1+R, D], v_mask [B, 1+R], t [B, Lt, D], t_mask [B, Lt], task_ids [B] or None) -> VLOutput``.

    ``v`` starts with IMG, ``t`` with CLS (``Lt = 1 + L``). With ``task_ids`` the task token is
    inserted after CLS (``num_task_tokens`` must then be > 0). Drop-path grows linearly over the
    text depth; a round's visual Block and co-attention layer take the rate of its text Block.
    """

    def __init__(
        self,
        dim: int,
        v_layers: int,
        t_layers: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        num_task_tokens: int = 0,
    ) -> None:
        super().__init__()
        if v_layers < 1 or t_layers < v_layers:
            raise ValueError(f"need 1 <= v_layers ({v_layers}) <= t_layers ({t_layers})")
        self.dim, self.v_layers, self.t_layers = dim, v_layers, t_layers
        rates = [drop_path * i / (t_layers - 1) if t_layers > 1 else 0.0 for i in range(t_layers)]
        prefix = t_layers - v_layers
        self.drop_path_rates = rates

        def block(rate: float) -> Block:
            return Block(dim, num_heads, mlp_ratio, dropout, rate)

        self.text_only = nn.ModuleList([block(rates[i]) for i in range(prefix)])
        self.v_blocks = nn.ModuleList([block(rates[prefix + r]) for r in range(v_layers)])
        self.t_blocks = nn.ModuleList([block(rates[prefix + r]) for r in range(v_layers)])
        self.co_layers = nn.ModuleList(
            [CoAttentionLayer(dim, num_heads, mlp_ratio, dropout, rates[prefix + r]) for r in range(v_layers)]
        )
        self.norm_v = nn.LayerNorm(dim)
        self.norm_t = nn.LayerNorm(dim)
        self.task_tokens = TaskTokens(num_task_tokens, dim) if num_task_tokens > 0 else None

    def forward(
        self,
        v: torch.Tensor,
        v_mask: torch.Tensor | None,
        t: torch.Tensor,
        t_mask: torch.Tensor | None,
        task_ids: torch.Tensor | None = None,
    ) -> VLOutput:
        check_streams(v, t, self.dim)
        v_mask = default_mask(v, v_mask)
        t, t_mask, prefix = prepare_text(t, t_mask, self.task_tokens, task_ids)
        va, ta = key_padding_to_attn_mask(v_mask), key_padding_to_attn_mask(t_mask)
        for blk in self.text_only:
            t = blk(t, ta)
        for v_blk, t_blk, co in zip(self.v_blocks, self.t_blocks, self.co_layers):
            v = v_blk(v, va)
            t = t_blk(t, ta)
            v, t = co(v, va, t, ta)
        v, t = self.norm_v(v), self.norm_t(t)
        return VLOutput(
            h_img=v[:, 0], h_cls=t[:, 0], regions=v[:, 1:], words=t[:, prefix:],
            region_mask=v_mask[:, 1:], word_mask=t_mask[:, prefix:],
        )
