"""The two-stream co-attention trunk (ViLBERT, as multi-task trained by 12-in-1).

Text is one stream; every other input kind (regions, image, video, audio) is the visual stream (two
or more of them are concatenated there, with a type embedding each). Layout with ``t_layers = T``
and ``v_layers = V`` (12-in-1: T = 12, V = 6)::

    text:   T - V text-only Blocks                        (independent of the image)
    then V rounds of:   visual Block,  text Block,  co-attention layer (v ↔ t)
    final:  LayerNorm per stream

A task with both streams runs all of it. A text-only task runs the T text Blocks (no co-attention);
a visual-only task (an image classification co-trained with V&L tasks) runs the V visual Blocks.
The task token goes after CLS in the text stream, or after the first visual token when the task
reads no text. (ViLBERT's released code interleaves the same counts slightly differently — its
first co-attention comes straight after the text-only Blocks, and the last round ends with a visual
and a text Block instead of a co-attention layer; the counts and the text-only prefix are the same.)

Layer drop (CVLP's key network, :mod:`cotrain.trunks.layer_drop`): ``layer_drop`` (0: off, the
default; the query network never drops), ``layer_drop_mode`` (``drop`` / ``replace_pairs``) and
``drop_generator`` are plain attributes the CVLP hook sets on its key network's trunk; with
``replace_pairs`` that trunk also holds ``successors``.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.crossattn import CoAttentionLayer
from cotrain.trunks.layer_drop import planned, trunk_plan
from cotrain.trunks.layers import Block, key_padding_to_attn_mask
from cotrain.trunks.output import (
    TaskTokens, Tokens, TrunkOutput, TypeEmbeddings, concat_streams, strip_task_token, with_task_token,
)


class CoAttentionTrunk(nn.Module):
    """``forward(streams {kind: Tokens}, task_ids [B] or None, task=None) -> TrunkOutput``.

    Drop-path grows linearly over the text depth; a round's visual Block and co-attention layer
    take the rate of its text Block. ``type_kinds``: visual kinds that occur together in one task
    (a type embedding each; empty: no such task).
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
        type_kinds: tuple[str, ...] | list[str] = (),
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
        self.types = TypeEmbeddings(type_kinds, dim) if type_kinds else None
        self.task_tokens = TaskTokens(num_task_tokens, dim) if num_task_tokens > 0 else None
        self.layer_drop, self.layer_drop_mode = 0.0, "drop"  # set on CVLP's key network only
        self.drop_generator: torch.Generator | None = None
        self.successors: nn.ModuleDict | None = None  # replace_pairs' successor layers (key network)

    def forward(self, streams: dict[str, Tokens], task_ids: torch.Tensor | None = None,
                task: str | None = None) -> TrunkOutput:
        """``task``: the task's name, unused here (the encoder-decoder trunk reads it)."""
        streams, tok_kind = with_task_token(streams, self.task_tokens, task_ids)
        text = streams.get("text")
        visual = {k: s for k, s in streams.items() if k != "text"}
        v = v_mask = va = lengths = None
        if visual:
            v, v_mask, lengths = concat_streams(visual, self.types)
            va = key_padding_to_attn_mask(v_mask)
        t, ta = (text.x, key_padding_to_attn_mask(text.mask)) if text is not None else (None, None)
        plan = trunk_plan(self)  # None without layer drop; a None layer below is skipped (identity)
        if t is not None:
            for blk in planned(self, plan, "text_only"):
                t = blk(t, ta) if blk is not None else t
        rounds = zip(planned(self, plan, "v_blocks"), planned(self, plan, "t_blocks"), planned(self, plan, "co_layers"))
        for v_blk, t_blk, co in rounds:
            if v is not None and v_blk is not None:
                v = v_blk(v, va)
            if t is not None and t_blk is not None:
                t = t_blk(t, ta)
            if v is not None and t is not None and co is not None:
                v, t = co(v, va, t, ta)
        states, masks = {}, {}
        if v is not None:
            v, start = self.norm_v(v), 0
            for (kind, s), n in zip(visual.items(), lengths):
                states[kind], masks[kind] = v[:, start : start + n], s.mask
                start += n
        if t is not None:
            states["text"], masks["text"] = self.norm_t(t), text.mask
        if tok_kind is not None:
            states[tok_kind], masks[tok_kind] = strip_task_token(states[tok_kind]), strip_task_token(masks[tok_kind])
        order = list(streams)  # the task's input order
        return TrunkOutput({k: states[k] for k in order}, {k: masks[k] for k in order})
