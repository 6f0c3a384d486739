"""Trunks: the transformer between the encoders and the heads, chosen by ``model.trunk`` from one table.

Every trunk has the same interface: ``trunk(streams {kind: Tokens}, task_ids [B] or None, task=name
or None) -> TrunkOutput`` (:mod:`cotrain.trunks.output`), and keeps the task tokens it inserts. Only
the encoder–decoder trunk reads ``task`` (its queries and, with separate decoders, its decoder);
the others ignore it. A trunk that cannot take a view axis says ``supports_views = False``.

| kind | trunk | systems |
| --- | --- | --- |
| ``shared`` | :class:`SharedTrunk`: one transformer for every input kind, ``l_adapt`` kind-specific first layers, streams of multi-input tasks joined | PolyViT (+ single-stream V&L) |
| ``single_stream`` | :class:`SharedTrunk` with every layer joint (``l_adapt`` must be 0) | VisualBERT / UNITER-style V&L |
| ``coattention`` | :class:`CoAttentionTrunk`: a text and a visual stream joined by co-attention | 12-in-1 (ViLBERT), CVLP |
| ``encoder_decoder`` | :class:`EncoderDecoderTrunk`: a transformer encoder per input kind (task embedding prepended) + a DETR-style decoder with per-task queries, shared or per task | UniT |
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from cotrain.trunks.coattention import CoAttentionTrunk
from cotrain.trunks.encoder_decoder import EncoderDecoderTrunk
from cotrain.trunks.layers import Attention, Block, DropPath, Mlp
from cotrain.trunks.output import TaskTokens, Tokens, TrunkOutput
from cotrain.trunks.shared import SharedTrunk


def _joint_kinds(task_inputs: Sequence[Sequence[str]], exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Input kinds that share a task with another kind (they need type embeddings), in first-seen order."""
    out: list[str] = []
    for inputs in task_inputs:
        kept = [k for k in inputs if k not in exclude]
        if len(kept) > 1:
            out += [k for k in kept if k not in out]
    return tuple(out)


def _shared(cfg, kinds, task_inputs, num_task_tokens, task_queries) -> nn.Module:
    return SharedTrunk(cfg.dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.drop_path, cfg.l_adapt,
                       kinds, _joint_kinds(task_inputs), num_task_tokens)


def _single_stream(cfg, kinds, task_inputs, num_task_tokens, task_queries) -> nn.Module:
    if cfg.l_adapt:
        from cotrain.config import ConfigError

        raise ConfigError(f"model.trunk single_stream joins every layer; model.l_adapt must be 0 (got {cfg.l_adapt}); "
                          "use trunk: shared for kind-specific first layers")
    return _shared(cfg, kinds, task_inputs, num_task_tokens, task_queries)


def _coattention(cfg, kinds, task_inputs, num_task_tokens, task_queries) -> nn.Module:
    c = cfg.coattention
    return CoAttentionTrunk(cfg.dim, c.v_layers, c.t_layers, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.drop_path,
                            num_task_tokens, _joint_kinds(task_inputs, exclude=("text",)))


def _encoder_decoder(cfg, kinds, task_inputs, num_task_tokens, task_queries) -> nn.Module:
    from cotrain.config import ConfigError

    c = cfg.encoder_decoder
    if not task_queries:
        raise ConfigError("model.trunk encoder_decoder needs the task table (a query count per task) to be built")
    return EncoderDecoderTrunk(
        cfg.dim, cfg.num_heads, {k: c.layers_of(k) for k in kinds}, c.decoder_layers,
        {t: q if q is not None else c.queries for t, q in task_queries.items()}, c.shared_decoder,
        cfg.mlp_ratio, cfg.dropout, cfg.drop_path, _joint_kinds(task_inputs), num_task_tokens,
    )


TRUNKS: dict[str, Callable[..., nn.Module]] = {
    "shared": _shared,
    "single_stream": _single_stream,
    "coattention": _coattention,
    "encoder_decoder": _encoder_decoder,
}


def build_trunk(cfg, kinds: Sequence[str], task_inputs: Sequence[Sequence[str]], num_task_tokens: int = 0,
                task_queries: dict[str, int | None] | None = None) -> nn.Module:
    """The trunk ``cfg.trunk`` (a :class:`~cotrain.config.ModelConfig`) for the input ``kinds`` the
    model encodes and the tasks' input lists; ``task_queries``: each task's query count (None: the
    default, ``model.encoder_decoder.queries``), read by the encoder–decoder trunk only."""
    if cfg.trunk not in TRUNKS:
        from cotrain.config import ConfigError

        raise ConfigError(f"unknown model.trunk {cfg.trunk!r}; known: {sorted(TRUNKS)}")
    return TRUNKS[cfg.trunk](cfg, tuple(kinds), [tuple(i) for i in task_inputs], num_task_tokens,
                             dict(task_queries or {}))


__all__ = ["TRUNKS", "Attention", "Block", "CoAttentionTrunk", "DropPath", "EncoderDecoderTrunk", "Mlp", "SharedTrunk",
           "TaskTokens", "Tokens", "TrunkOutput", "build_trunk"]
