"""The shared trunk: one pre-LN transformer for every input kind (PolyViT), and for tasks that read
several inputs a single-stream joint transformer over their concatenation (VisualBERT / UNITER).

    streams {kind: Tokens} ─▶ [task token into the text / first stream]
                           ─▶ layers 0..l_adapt-1: each stream through its own kind's adapter layers
                           ─▶ concatenate the streams (+ a type embedding per kind when several)
                           ─▶ layers l_adapt..depth-1: shared, joint attention over every token
                           ─▶ LayerNorm ─▶ split back per stream, task token stripped ─▶ TrunkOutput

With one input and no task token this is exactly PolyViT's trunk: ``L_adapt`` modality-specific
first layers that *replace* shared ones (total depth stays ``depth``). ``single_stream`` is this
trunk with ``l_adapt = 0``: every layer joint.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.trunks.layers import Block, key_padding_to_attn_mask
from cotrain.trunks.output import (
    TaskTokens, Tokens, TrunkOutput, TypeEmbeddings, concat_streams, strip_task_token, with_task_token,
)


class SharedTrunk(nn.Module):
    """``forward(streams {kind: Tokens}, task_ids [B] or None, task=None) -> TrunkOutput``.

    Layer ``i`` has drop-path rate ``drop_path * i / (depth - 1)``. ``kinds``: the input kinds the
    trunk serves (one adapter stack each when ``l_adapt > 0``); ``type_kinds``: kinds that occur in
    multi-input tasks (one type embedding each; empty: no such task); ``num_task_tokens``: 0 for none.
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
        kinds: tuple[str, ...] | list[str] = (),
        type_kinds: tuple[str, ...] | list[str] = (),
        num_task_tokens: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= l_adapt <= depth:
            raise ValueError(f"l_adapt ({l_adapt}) must be between 0 and depth ({depth})")
        if l_adapt and not kinds:
            raise ValueError("l_adapt > 0 needs the list of input kinds the trunk serves")
        self.dim, self.depth, self.l_adapt = dim, depth, l_adapt
        self.kinds = tuple(kinds)
        self.drop_path_rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]

        def block(i: int) -> Block:
            return Block(dim, num_heads, mlp_ratio, dropout, self.drop_path_rates[i])

        self.adapters = nn.ModuleDict({k: nn.ModuleList([block(i) for i in range(l_adapt)]) for k in self.kinds})
        self.shared = nn.ModuleList([block(i) for i in range(l_adapt, depth)])
        self.norm = nn.LayerNorm(dim)
        self.types = TypeEmbeddings(type_kinds, dim) if type_kinds else None
        self.task_tokens = TaskTokens(num_task_tokens, dim) if num_task_tokens > 0 else None

    def adapter_layers(self, kind: str) -> list[Block]:
        """The ``l_adapt`` kind-specific first layers of a ``kind`` stream."""
        if kind not in self.adapters:
            if self.l_adapt == 0:
                return []
            raise ValueError(f"the trunk has no layers for input {kind!r}; it serves {list(self.kinds)}")
        return list(self.adapters[kind])

    def forward(self, streams: dict[str, Tokens], task_ids: torch.Tensor | None = None,
                task: str | None = None) -> TrunkOutput:
        """``task``: the task's name, unused here (the encoder-decoder trunk reads it)."""
        streams, tok_kind = with_task_token(streams, self.task_tokens, task_ids)
        for kind, s in streams.items():
            x, mask = s.x, key_padding_to_attn_mask(s.mask)
            for blk in self.adapter_layers(kind):
                x = blk(x, mask)
            streams[kind] = Tokens(x, s.mask)
        x, mask, lengths = concat_streams(streams, self.types)
        attn_mask = key_padding_to_attn_mask(mask)
        for blk in self.shared:
            x = blk(x, attn_mask)
        x = self.norm(x)
        states, masks, start = {}, {}, 0
        for (kind, s), n in zip(streams.items(), lengths):
            xs, ms = x[:, start : start + n], s.mask
            if kind == tok_kind:
                xs, ms = strip_task_token(xs), strip_task_token(ms)
            states[kind], masks[kind] = xs, ms
            start += n
        return TrunkOutput(states, masks)
