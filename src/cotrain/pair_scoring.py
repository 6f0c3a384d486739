"""Scoring (caption, image) pairs of a retrieval pool: each stream's own work once, the rest per pair.

    captions [Nt, L] ──▶ text encoder ──▶ (co-attention: trunk.start_text)     cached  [Nt, Lt, D]
    images   [Ni, ...] ─▶ its encoder ──▶ (co-attention: trunk.start_visual)   cached  [Ni, Lv, D]
    pair (i, j) ──▶ the rest of the trunk on (caption i, image j) ──▶ head ──▶ score

With the co-attention trunk everything before the first co-attention layer depends on one stream
only (the ``t_layers - v_layers`` text-only Blocks and round 0's text and visual Blocks), so it runs
once per caption and once per image; per pair run only the co-attention layers and the later
rounds. When the head reads nothing but the streams' first states (``Head.first_states_only``:
retrieval's ``h_IMG ⊙ h_CLS``), the last layer computes only those. Other trunks (``shared``,
``single_stream``, ``encoder_decoder``) cache the encoders' outputs and run the whole trunk per
pair. Either way a pair's score equals the model's forward pass on that pair alone.

Pairs run ``chunk_size`` at a time under ``torch.inference_mode``; a progress bar (anything with
``update(n)``, e.g. tqdm) advances by the pairs of each chunk.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from cotrain.encoders import encode, views_of
from cotrain.errors import InputError
from cotrain.trunks.output import Tokens


def _cat(parts: list[Tokens]) -> Tokens:
    """Row chunks joined; chunks an encoder trimmed to their own longest row are padded (masked)."""
    n = max(p.x.shape[1] for p in parts)
    pad = [(n - p.x.shape[1]) for p in parts]
    return Tokens(torch.cat([F.pad(p.x, (0, 0, 0, k)) for p, k in zip(parts, pad)]),
                  torch.cat([F.pad(p.mask, (0, k), value=False) for p, k in zip(parts, pad)]))


def pool_kind(model, task: str) -> str:
    """The input kind a retrieval task reads besides text (its pool's images); InputError for a task
    that does not read text and exactly one other input."""
    inputs = model.spec(task).inputs
    if "text" not in inputs or len(inputs) != 2:
        raise InputError(f"pair scoring needs a task reading text and one other input; {task!r} reads {list(inputs)}")
    return next(k for k in inputs if k != "text")


class PairScorer:
    """``PairScorer(model, task, text {"text": [Nt, L]}, visual {key: [Ni, ...]}, chunk_size=2048)``:
    encodes (and, with the co-attention trunk, starts) every caption and image once, in chunks of
    ``chunk_size`` rows. Then :meth:`score` scores any list of pairs, :meth:`all_pairs` the whole
    ``[Nt, Ni]`` grid. ``pairs`` / ``seconds``: pairs scored so far and the time spent on them.
    The model should be in eval mode (dropout off)."""

    @torch.inference_mode()
    def __init__(self, model, task: str, text: dict[str, torch.Tensor], visual: dict[str, torch.Tensor],
                 chunk_size: int = 2048) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.model, self.task, self.chunk_size = model, task, chunk_size
        self.spec = model.spec(task)
        self.other = pool_kind(model, task)
        if views_of(self.other, visual):
            raise InputError("pair scoring takes a pool of single images (no view axis)")
        self.head = model.heads[self.spec.head]
        trunk = model.trunk
        self.staged = all(callable(getattr(trunk, f, None)) for f in ("start_text", "start_visual", "finish"))
        self.text = self._encode("text", text)
        self.visual = self._encode(self.other, visual)
        self.device = self.text.x.device
        self.task_token = model.task_token_id(task) is not None
        if self.staged:
            self.text = self._chunked(self.text, lambda s: trunk.start_text(s, self._ids(s.x.shape[0])))
            self.visual = self._chunked(self.visual, lambda s: trunk.start_visual({self.other: s}))
        self.pairs, self.seconds = 0, 0.0

    @property
    def num_text(self) -> int:
        return self.text.x.shape[0]

    @property
    def num_visual(self) -> int:
        return self.visual.x.shape[0]

    def _ids(self, n: int) -> torch.Tensor | None:
        return self.model._task_ids(self.task, n, self.device)

    def _encode(self, kind: str, batch: dict[str, torch.Tensor]) -> Tokens:
        main = batch[next(iter(batch))]
        parts = []
        for lo in range(0, main.shape[0], self.chunk_size):
            rows = {k: v[lo : lo + self.chunk_size] for k, v in batch.items()}
            ids = self.model._encoder_task_ids(self.task, kind, rows)
            parts.append(encode(self.model.encoders[kind], kind, rows, task_ids=ids))
        if not parts:
            raise InputError(f"task {self.task!r}: the pool has no {kind} rows")
        return _cat(parts)

    def _chunked(self, tokens: Tokens, fn) -> Tokens:
        n = tokens.x.shape[0]
        return _cat([fn(tokens.index(torch.arange(lo, min(lo + self.chunk_size, n), device=tokens.x.device)))
                     for lo in range(0, n, self.chunk_size)])

    def _score_chunk(self, t_rows: torch.Tensor, v_rows: torch.Tensor) -> torch.Tensor:
        t, v = self.text.index(t_rows), self.visual.index(v_rows)
        inputs = self.spec.inputs
        if self.staged:
            masks = {k: (t.mask if k == "text" else v.mask) for k in inputs}
            out = self.model.trunk.finish(v, t, masks, "text" if self.task_token else None,
                                          first_only=self.head.first_states_only)
        else:
            pair = {"text": t, self.other: v}
            out = self.model.trunk({k: pair[k] for k in inputs}, self._ids(t_rows.numel()), task=self.task)
        return self.head(out)

    @torch.inference_mode()
    def score(self, t_rows: torch.Tensor, v_rows: torch.Tensor, bar=None) -> torch.Tensor:
        """Scores ``[P]`` (float32, on the pool's device) of the pairs (caption ``t_rows[p]``, image
        ``v_rows[p]``), ``chunk_size`` pairs per trunk pass."""
        t_rows, v_rows = torch.as_tensor(t_rows).long().to(self.device), torch.as_tensor(v_rows).long().to(self.device)
        if t_rows.shape != v_rows.shape or t_rows.dim() != 1:
            raise ValueError(f"t_rows and v_rows must be [P] alike, got {tuple(t_rows.shape)} and {tuple(v_rows.shape)}")
        for rows, n, what in ((t_rows, self.num_text, "caption"), (v_rows, self.num_visual, "image")):
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= n):
                raise IndexError(f"{what} rows must lie in [0, {n}), got [{int(rows.min())}, {int(rows.max())}]")
        t0 = time.perf_counter()
        out = torch.empty(t_rows.numel(), dtype=torch.float32, device=self.device)
        for lo in range(0, t_rows.numel(), self.chunk_size):
            hi = min(lo + self.chunk_size, t_rows.numel())
            out[lo:hi] = self._score_chunk(t_rows[lo:hi], v_rows[lo:hi]).float()
            if bar is not None:
                bar.update(hi - lo)
        self.pairs += t_rows.numel()
        self.seconds += time.perf_counter() - t0
        return out

    def all_pairs(self, bar=None) -> torch.Tensor:
        """Scores ``[Nt, Ni]`` of every caption with every image (caption-major order)."""
        nt, ni = self.num_text, self.num_visual
        idx = torch.arange(nt * ni, device=self.device)
        return self.score(idx // ni, idx % ni, bar).view(nt, ni)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0


__all__ = ["PairScorer", "pool_kind"]
