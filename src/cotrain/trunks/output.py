"""The one thing every trunk returns, what every encoder gives a trunk, and the task token.

An encoder turns one input kind into :class:`Tokens` — ``x [B, L, D]`` with its own first token
(the class token of an image / video / audio / text encoder, the ``IMG`` token of the region
encoder) and ``mask [B, L]`` (True = a real token). A trunk takes the task's streams, one
``Tokens`` per input kind in the task's order (``{"regions": ..., "text": ...}``), and returns a
:class:`TrunkOutput`: the states of every stream after the final LayerNorm, aligned with the
encoder's tokens (a task token the trunk inserted is stripped again), their masks, and the view
count. Heads read only a ``TrunkOutput``:

- ``out.pooled(kind)`` ``[B, D]``: a stream's first state (``h_CLS`` for text, ``h_IMG`` for regions,
  the class token for image / video / audio);
- ``out.joint()`` ``[B, D]``: the product of every stream's first state — ``h_IMG ⊙ h_CLS`` for an
  image–text task (12-in-1's overall representation), the class token itself for a one-input task;
  with decoder states (the ``encoder_decoder`` trunk, UniT) the first query's state of the top
  decoder layer, ``decoder[-1, :, 0]`` (what UniT's classification heads read);
- ``out.tokens(kind)``: ``(states [B, L-1, D], mask [B, L-1])`` without the first token (the regions
  of a refexp head, the words of a text head).

- ``out.decoder`` ``[L_dec, B, Q, D]``: the decoder's queries after every layer, each after the
  decoder's final LayerNorm (the last is the final output; detection heads read all of them).

With ``views = K`` (NLVR2's two images, retrieval training's K candidates) every tensor has a view
axis after the batch one: ``[B, K, L, D]``, ``pooled`` ``[B, K, D]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from cotrain.trunks.layers import trunc_normal_



@dataclass
class Tokens:
    """One encoded stream: ``x [B, L, D]`` (first token = the stream's class / IMG / CLS token) and
    ``mask [B, L]`` bool (True = real)."""

    x: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 3:
            raise ValueError(f"tokens must be [B, L, D], got {tuple(self.x.shape)}")
        if self.mask is None:
            self.mask = torch.ones(self.x.shape[:2], dtype=torch.bool, device=self.x.device)
        elif self.mask.shape != self.x.shape[:2]:
            raise ValueError(f"mask must be [B, L] = {tuple(self.x.shape[:2])}, got {tuple(self.mask.shape)}")
        else:
            self.mask = self.mask.bool()

    def index(self, rows: torch.Tensor) -> "Tokens":
        """The tokens of batch rows ``rows`` (a pair-scoring pass gathers each stream's rows)."""
        return Tokens(self.x[rows], self.mask[rows])


@dataclass
class TrunkOutput:
    """Per-stream states (after the final LayerNorm) and masks, keyed by input kind, in the task's
    input order; ``views`` = K (0: no view axis); ``decoder``: per-layer decoder states
    ``[layers, B, Q, D]`` of an encoder–decoder trunk (None for the others)."""

    states: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    views: int = 0
    decoder: torch.Tensor | None = field(default=None)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.states)

    def _stream(self, kind: str) -> torch.Tensor:
        if kind not in self.states:
            raise KeyError(f"the trunk output has streams {list(self.states)}, not {kind!r}")
        return self.states[kind]

    def pooled(self, kind: str) -> torch.Tensor:
        """A stream's first state: ``[B, D]`` (``[B, K, D]`` with views)."""
        return self._stream(kind)[..., 0, :]

    def joint(self) -> torch.Tensor:
        """The product of every stream's first state: ``[B, D]`` (``[B, K, D]`` with views); with
        decoder states, the top layer's first query ``decoder[-1, :, 0]`` instead."""
        if self.decoder is not None:
            return self.decoder[-1][..., 0, :]
        return math.prod(self.pooled(k) for k in self.states)

    def tokens(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A stream's states and mask without its first token: ``[B, L-1, D]``, ``[B, L-1]``."""
        return self._stream(kind)[..., 1:, :], self.masks[kind][..., 1:]

    def regroup(self, views: int) -> "TrunkOutput":
        """``B·K`` trunk passes (row ``b·K + k``) → every tensor ``[B, K, ...]``."""
        if self.views:
            raise ValueError(f"this output already has a view axis (K = {self.views})")
        first = next(iter(self.states.values()))
        if views < 1 or first.shape[0] % views:
            raise ValueError(f"cannot regroup {first.shape[0]} trunk passes into views of {views}")

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0] // views, views, *t.shape[1:])

        return TrunkOutput(
            {k: split(v) for k, v in self.states.items()}, {k: split(v) for k, v in self.masks.items()}, views,
            None if self.decoder is None else self.decoder.reshape(
                self.decoder.shape[0], -1, views, *self.decoder.shape[2:]),
        )


class TaskTokens(nn.Module):
    """``nn.Embedding(num, D)``: a learned token per task (or per head), inserted after a stream's
    first token (12-in-1: ``CLS, TASK_t, w_1..w_m``) and stripped from the trunk's output."""

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"need at least one task token, got {num}")
        self.num = num
        self.embed = nn.Embedding(num, dim)
        trunc_normal_(self.embed.weight)

    def insert(self, stream: Tokens, task_ids: torch.Tensor, at: int = 1) -> Tokens:
        """``x [B, L, D]``, ``task_ids [B]`` long → ``[B, 1+L, D]`` with ``TASK_t`` at position ``at``
        (1: after the stream's first token, 12-in-1; 0: before it, UniT's prepended task embedding)."""
        x, mask = stream.x, stream.mask
        if task_ids.shape != x.shape[:1]:
            raise ValueError(f"task_ids must be [B] = [{x.shape[0]}], got {tuple(task_ids.shape)}")
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.num):
            raise ValueError(f"task ids must lie in [0, {self.num}), got {task_ids.tolist()}")
        tok = self.embed(task_ids.long()).to(x.dtype).unsqueeze(1)
        x = torch.cat([x[:, :at], tok, x[:, at:]], dim=1)
        mask = torch.cat([mask[:, :at], torch.ones_like(mask[:, :1]), mask[:, at:]], dim=1)
        return Tokens(x, mask)


def with_task_token(streams: dict[str, Tokens], task_tokens: TaskTokens | None,
                    task_ids: torch.Tensor | None) -> tuple[dict[str, Tokens], str | None]:
    """What every trunk does first: a copy of ``streams`` with ``TASK_t`` inserted into the task-token
    stream (:func:`task_token_stream`) when ``task_ids`` are given, and the name of that stream."""
    if not streams:
        raise ValueError("the trunk needs at least one stream")
    streams = dict(streams)
    if task_ids is None:
        return streams, None
    if task_tokens is None:
        raise ValueError("task_ids were given but the trunk has no task tokens (model.task_tokens: none)")
    kind = task_token_stream(list(streams))
    streams[kind] = task_tokens.insert(streams[kind], task_ids)
    return streams, kind


def strip_task_token(x: torch.Tensor) -> torch.Tensor:
    """Undo :meth:`TaskTokens.insert` on states ``[B, 1+L, D]`` (or a mask ``[B, 1+L]``)."""
    return torch.cat([x[:, :1], x[:, 2:]], dim=1)


def task_token_stream(kinds: tuple[str, ...] | list[str]) -> str:
    """The stream a task token goes into: text when the task reads text (12-in-1), else its first input."""
    return "text" if "text" in kinds else kinds[0]


class TypeEmbeddings(nn.Module):
    """A learned embedding per input kind, added to a stream before streams are concatenated
    (VisualBERT / UNITER's segment embeddings), so a joint sequence still tells its streams apart."""

    def __init__(self, kinds: tuple[str, ...] | list[str], dim: int) -> None:
        super().__init__()
        self.kinds = tuple(kinds)
        self.embed = nn.Parameter(torch.zeros(len(self.kinds), dim))
        trunc_normal_(self.embed)

    def forward(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        return x + self.embed[self.kinds.index(kind)].to(x.dtype)


def concat_streams(streams: dict[str, Tokens], types: TypeEmbeddings | None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One joint sequence from several streams: ``(x [B, ΣL, D], mask [B, ΣL], lengths)``; a single
    stream passes through unchanged (no type embedding)."""
    if len(streams) == 1:
        (s,) = streams.values()
        return s.x, s.mask, [s.x.shape[1]]
    if types is None:
        raise ValueError(f"streams {list(streams)} need type embeddings to be concatenated")
    sizes = {k: s.x.shape[0] for k, s in streams.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"streams have different batch sizes {sizes}")
    xs = [types(k, s.x) for k, s in streams.items()]
    return torch.cat(xs, dim=1), torch.cat([s.mask for s in streams.values()], dim=1), [x.shape[1] for x in xs]


__all__ = [
    "TaskTokens", "Tokens", "TrunkOutput", "TypeEmbeddings", "concat_streams", "strip_task_token", "task_token_stream",
    "with_task_token",
]
