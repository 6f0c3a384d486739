"""Cross-attention and ViLBERT's co-attention layer (pre-LN, fused SDPA, key-padding masks).

ViLBERT's co-attentional transformer layer (Lu et al. 2019, Fig. 2b) exchanges keys and values
between the streams: the visual queries attend to the text keys / values and the text queries to
the visual ones, both computed from the states *before* the layer; each stream then has its own
feed-forward network. ViLBERT is post-LN (BERT); here, as in the rest of cotrain, every
sub-layer is pre-LN: ``x + dp(sublayer(LN(x)))``.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.layers import DropPath, Mlp, MultiHeadBase, init_vit_weights


class CrossAttention(MultiHeadBase):
    """Multi-head attention of queries ``x [B, Lq, D]`` over a context ``ctx [B, Lk, D]``.

    ``ctx_mask``: key padding ``[B, Lk]`` bool (True = real) or None; padded keys get no weight.
    Every row needs at least one real key (the V&L streams always have IMG / CLS).
    Returns ``[B, Lq, D]``.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, lq, _ = x.shape
        lk = ctx.shape[1]
        q = self.q(x).view(b, lq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(ctx).view(b, lk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.attend(q, k, v, ctx_mask)


class CoAttentionLayer(nn.Module):
    """ViLBERT co-attention layer: ``(v [B, Lv, D], v_mask [B, Lv], t [B, Lt, D], t_mask [B, Lt]) -> (v, t)``.

    ::

        v' = v + dp(CrossAttn_v(LN(v), LN(t), t_mask))     # visual queries, text keys / values
        t' = t + dp(CrossAttn_t(LN(t), LN(v), v_mask))     # text queries, visual keys / values
        v'' = v' + dp(Mlp_v(LN(v')));  t'' = t' + dp(Mlp_t(LN(t')))

    Both cross-attentions read the states before the layer (ViLBERT's ``BertBiAttention``).
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm_v1 = nn.LayerNorm(dim)
        self.norm_t1 = nn.LayerNorm(dim)
        self.v_from_t = CrossAttention(dim, num_heads, dropout)
        self.t_from_v = CrossAttention(dim, num_heads, dropout)
        self.norm_v2 = nn.LayerNorm(dim)
        self.norm_t2 = nn.LayerNorm(dim)
        self.mlp_v = Mlp(dim, hidden, dropout)
        self.mlp_t = Mlp(dim, hidden, dropout)
        self.drop_path = DropPath(drop_path)
        self.apply(init_vit_weights)

    def forward(
        self, v: torch.Tensor, v_mask: torch.Tensor | None, t: torch.Tensor, t_mask: torch.Tensor | None,
        keep_v: list[int] | None = None, keep_t: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``keep_v`` / ``keep_t``: token positions whose outputs are wanted (None: all); the keys and
        values still read every token, so the kept rows equal those of the full layer. Returns
        ``(v [B, len(keep_v) or Lv, D], t [B, len(keep_t) or Lt, D])``."""
        nv, nt = self.norm_v1(v), self.norm_t1(t)
        qv, qt = (nv if keep_v is None else nv[:, keep_v]), (nt if keep_t is None else nt[:, keep_t])
        v = (v if keep_v is None else v[:, keep_v]) + self.drop_path(self.v_from_t(qv, nt, t_mask))
        t = (t if keep_t is None else t[:, keep_t]) + self.drop_path(self.t_from_v(qt, nv, v_mask))
        v = v + self.drop_path(self.mlp_v(self.norm_v2(v)))
        t = t + self.drop_path(self.mlp_t(self.norm_t2(t)))
        return v, t
