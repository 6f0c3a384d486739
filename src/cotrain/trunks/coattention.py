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

    The same pass in parts, for scoring every (caption, image) pair of a pool: everything before
    the first co-attention depends on one stream only, so :meth:`start_text` (per caption) and
    :meth:`start_visual` (per image) run once each, and :meth:`finish` runs the rest per pair from
    those states — ``forward`` is exactly ``finish(start_visual(...), start_text(...), ...)``.

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
        plan = trunk_plan(self)  # None without layer drop (the key network of CVLP drops layers)
        if plan is not None:
            return self._forward_planned(streams, tok_kind, plan)
        t = self._start_text(text) if text is not None else None
        v = self.start_visual(visual) if visual else None
        return self.finish(v, t, {k: s.mask for k, s in streams.items()}, tok_kind)

    def _forward_planned(self, streams: dict[str, Tokens], tok_kind: str | None, plan) -> TrunkOutput:
        """The whole trunk in one pass with a layer-drop ``plan`` (:mod:`cotrain.trunks.layer_drop`):
        a layer the plan leaves out (None) is the identity, a replaced pair runs its successor."""
        text = streams.get("text")
        visual = {k: s for k, s in streams.items() if k != "text"}
        v = v_mask = va = lengths = None
        if visual:
            v, v_mask, lengths = concat_streams(visual, self.types)
            va = key_padding_to_attn_mask(v_mask)
        t, ta = (text.x, key_padding_to_attn_mask(text.mask)) if text is not None else (None, None)
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

    # ------------------------------------------------------------------ the streams apart, then together
    def start_text(self, text: Tokens, task_ids: torch.Tensor | None = None) -> Tokens:
        """The text stream up to the first co-attention, which depends on no image: ``TASK_t``
        inserted after CLS (when ``task_ids [B]`` are given), the ``t_layers - v_layers`` text-only
        Blocks and the first round's text Block. ``[B, L(+1), D]``; pool scoring caches it per caption."""
        streams, _ = with_task_token({"text": text}, self.task_tokens, task_ids)
        return self._start_text(streams["text"])

    def _start_text(self, text: Tokens) -> Tokens:
        t, ta = text.x, key_padding_to_attn_mask(text.mask)
        for blk in [*self.text_only, self.t_blocks[0]]:
            t = blk(t, ta)
        return Tokens(t, text.mask)

    def start_visual(self, visual: dict[str, Tokens]) -> Tokens:
        """The visual streams (a task token already inserted, if any) joined into one (a type
        embedding each when several) and through the first round's visual Block: ``[B, ΣL, D]``,
        which depends on no text; pool scoring caches it per image."""
        v, v_mask, _ = concat_streams(visual, self.types)
        return Tokens(self.v_blocks[0](v, key_padding_to_attn_mask(v_mask)), v_mask)

    def finish(self, v: Tokens | None, t: Tokens | None, masks: dict[str, torch.Tensor], task_stream: str | None = None,
               first_only: bool = False) -> TrunkOutput:
        """The rest of the trunk from :meth:`start_visual` / :meth:`start_text` states: round 0's
        co-attention, rounds 1.., the final LayerNorms, the task token stripped again.

        ``masks``: ``{kind: [B, L]}`` of the streams as the trunk received them (task input order,
        the task token included in ``task_stream``'s) — it gives the output's order and each visual
        kind's length. ``first_only``: the last layer computes only each stream's first state (all
        that a head reading ``out.pooled`` / ``out.joint`` needs), so every state is ``[B, 1, D]``.
        """
        va = key_padding_to_attn_mask(v.mask) if v is not None else None
        ta = key_padding_to_attn_mask(t.mask) if t is not None else None
        vx, tx = (v.x if v is not None else None), (t.x if t is not None else None)
        kinds = [k for k in masks if k != "text"]  # the visual stream's parts, in order
        lengths = [masks[k].shape[1] for k in kinds]
        starts = [sum(lengths[:i]) for i in range(len(kinds))]
        last = self.v_layers - 1
        for r, (v_blk, t_blk, co) in enumerate(zip(self.v_blocks, self.t_blocks, self.co_layers)):
            if r > 0:
                vx = v_blk(vx, va) if vx is not None else None
                tx = t_blk(tx, ta) if tx is not None else None
            keep = first_only and r == last
            if vx is not None and tx is not None:
                vx, tx = co(vx, va, tx, ta, keep_v=starts if keep else None, keep_t=[0] if keep else None)
            elif keep:
                vx, tx = (vx[:, starts] if vx is not None else None), (tx[:, :1] if tx is not None else None)
        states, out_masks = {}, {}
        if vx is not None:
            vx = self.norm_v(vx)
            for i, kind in enumerate(kinds):
                states[kind] = vx[:, i : i + 1] if first_only else vx[:, starts[i] : starts[i] + lengths[i]]
                out_masks[kind] = masks[kind][:, :1] if first_only else masks[kind]
        if tx is not None:
            states["text"], out_masks["text"] = self.norm_t(tx), masks["text"][:, :1] if first_only else masks["text"]
        if task_stream is not None:
            states[task_stream] = strip_task_token(states[task_stream])
            out_masks[task_stream] = strip_task_token(out_masks[task_stream])
        return TrunkOutput({k: states[k] for k in masks}, {k: out_masks[k] for k in masks})
