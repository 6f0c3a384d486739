"""The single-stream V&L trunk (VisualBERT / UNITER style): one transformer over both streams.

The visual tokens (IMG first) and the text tokens (CLS, [TASK], words) are concatenated, each
with its own learned type embedding (0 = visual, 1 = text), and run through ``t_layers`` pre-LN
Blocks with one joint key-padding mask, then a final LayerNorm. Every layer mixes the streams.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.modalities.common import trunc_normal_
from cotrain.trunks.layers import Block, key_padding_to_attn_mask
from cotrain.trunks.vl_output import TaskTokens, VLOutput, check_streams, default_mask, prepare_text


class SingleStreamTrunk(nn.Module):
    """``forward(v [B, 1+R, D], v_mask [B, 1+R], t [B, Lt, D], t_mask [B, Lt], task_ids [B] or None) -> VLOutput``.

    Sequence: ``[IMG, v_1..v_R] + type_0 ++ [CLS, (TASK), w_1..w_m] + type_1`` of length
    ``1 + R + Lt (+1)``. Drop-path grows linearly from 0 to ``drop_path`` over the layers.
    """

    def __init__(
        self,
        dim: int,
        layers: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        num_task_tokens: int = 0,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"need at least one layer, got {layers}")
        self.dim, self.layers = dim, layers
        self.drop_path_rates = [drop_path * i / (layers - 1) if layers > 1 else 0.0 for i in range(layers)]
        self.type_embed = nn.Parameter(torch.zeros(2, dim))
        trunc_normal_(self.type_embed)
        self.blocks = nn.ModuleList(
            [Block(dim, num_heads, mlp_ratio, dropout, rate) for rate in self.drop_path_rates]
        )
        self.norm = nn.LayerNorm(dim)
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
        nv = v.shape[1]
        x = torch.cat([v + self.type_embed[0].to(v.dtype), t + self.type_embed[1].to(t.dtype)], dim=1)
        mask = torch.cat([v_mask, t_mask], dim=1)
        attn_mask = key_padding_to_attn_mask(mask)
        for blk in self.blocks:
            x = blk(x, attn_mask)
        x = self.norm(x)
        v, t = x[:, :nv], x[:, nv:]
        return VLOutput(
            h_img=v[:, 0], h_cls=t[:, 0], regions=v[:, 1:], words=t[:, prefix:],
            region_mask=v_mask[:, 1:], word_mask=t_mask[:, prefix:],
        )
