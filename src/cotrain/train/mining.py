"""Offline hard-negative mining with a trained model (12-in-1's retrieval negatives).

For each training caption of a retrieval task, the training images the model scores highest that
are not the caption's own: its hard candidates, which a later run draws its multiple-choice
negatives from (``tasks[].retrieval.mined``, :mod:`cotrain.data.mined`).

    captions [N] ─┐ pooled single-stream states, cosine ─▶ each caption's top `shortlist` images
    images  [Ni] ─┘                                           │ (scoring "joint")
                                                              ▼
                               co-attention trunk + retrieval head on those pairs ─▶ top C

- ``scoring="joint"`` (default): the first stage (the cosine of :meth:`Model.pooled_single` states,
  what the contrastive loss trains) shortlists ``shortlist`` images per caption; the full trunk
  and retrieval head (:class:`cotrain.pair_scoring.PairScorer`) re-score them and the C highest
  are kept. ``shortlist=None``: the full trunk on every (caption, image) pair (N x Ni pairs).
- ``scoring="pooled"``: the first stage alone (fast; meaningful for a model trained with the
  ``contrastive`` or ``both`` loss).

Never a candidate: the caption's own image, and any image that has a caption with exactly the same
tokens (a positive by the data's own word; counted in the report as ``same_caption_excluded``).
The pool is the split's distinct images (``image_id``); rows keep the split's order, so the file
fits the same training split only. Scores are computed under ``torch.inference_mode`` with the
model in eval mode; a progress bar counts pairs (``joint``) or captions (``pooled``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.arrays import CANDIDATE_KEYS, Split
from ..data.errors import DataError
from ..data.mined import MinedCandidates
from ..encoders import entry
from ..pair_scoring import PairScorer, pool_kind
from .retrieval_eval import pool_rows, pooled_states

SCORING = ("joint", "pooled")


def same_caption_columns(text: np.ndarray, column: np.ndarray) -> list[np.ndarray]:
    """Per caption (``text`` int ``[N, L]``, its image's pool ``column [N]``), the sorted pool columns
    of every image that has a caption with exactly its tokens (its own included)."""
    _, group = np.unique(np.asarray(text), axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.lexsort((column, group))
    g, c = group[order], column[order]
    keep = np.ones(len(g), bool)
    keep[1:] = (g[1:] != g[:-1]) | (c[1:] != c[:-1])
    g, c = g[keep], c[keep]
    bounds = np.searchsorted(g, np.arange(group.max() + 2 if len(group) else 1))
    per_group = [c[bounds[i]: bounds[i + 1]] for i in range(len(bounds) - 1)]
    return [per_group[k] for k in group]


def _masked(scores: torch.Tensor, rows: range, positives: list[np.ndarray]) -> torch.Tensor:
    """``scores [c, Ni]`` of captions ``rows`` with each caption's positive columns set to -inf."""
    r = np.concatenate([np.full(len(positives[i]), j) for j, i in enumerate(rows)])
    c = np.concatenate([positives[i] for i in rows])
    scores[torch.from_numpy(r).to(scores.device), torch.from_numpy(c).to(scores.device)] = float("-inf")
    return scores


def mine_candidates(model, task: str, split: Split, *, candidates: int = 12, shortlist: int | None = 64,
                    scoring: str = "joint", chunk_size: int = 2048, progress: bool = False,
                    metadata: dict | None = None) -> tuple[MinedCandidates, dict]:
    """Mine ``split``'s (a retrieval train split: ``text [N, L]``, ``image_id [N]``) hard candidates
    with ``model`` (module docstring). Returns the :class:`MinedCandidates` (rows in split order, C =
    ``min(candidates, images - 1)`` columns, -1 / NaN where a caption has fewer non-positive images)
    and a report: ``captions``, ``images``, ``candidates``, ``scoring``, ``shortlist``, ``pairs`` (through
    the full trunk), ``pairs_per_s``, ``seconds``, ``same_caption_excluded`` (positives besides the
    own image), ``own_first`` (fraction of captions whose own image outscores all their candidates),
    ``overlap_with_data`` (fraction of mined candidates among the split's own candidates; None without)."""
    if scoring not in SCORING:
        raise ValueError(f"unknown scoring {scoring!r}; use {' or '.join(SCORING)}")
    if candidates < 1 or (shortlist is not None and shortlist < candidates):
        raise ValueError(f"candidates must be at least 1 and the shortlist at least as long (it is what the C are "
                         f"picked from), got candidates {candidates} and shortlist {shortlist}")
    a = split.arrays
    if "image_id" not in a or np.ndim(a["image_id"]) != 1 or np.ndim(a.get("text")) != 2:
        raise DataError(f"task {task!r}: mining needs a retrieval train split with one caption per row (text [N, L]) "
                        f"and its image_id [N]; this one has {sorted(a)}")
    t0 = time.perf_counter()
    ids = np.asarray(a["image_id"], dtype=np.int64)
    if ids.size == 0:
        raise DataError(f"task {task!r}: mining needs at least 2 distinct training images, got 0")
    _, first, column, ni = pool_rows(ids)  # the pool: one row per distinct image; each caption's column
    pool_ids, n = ids[first], len(ids)
    if ni < 2:
        raise DataError(f"task {task!r}: mining needs at least 2 distinct training images, got {ni}")
    c = min(candidates, ni - 1)
    text_rows = np.asarray(a["text"])
    positives = same_caption_columns(text_rows, column)
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    other = pool_kind(model, task)
    visual = {k: torch.from_numpy(np.ascontiguousarray(split.column(k, first))).to(device)
              for k in entry(other).keys if k in split}
    text = {"text": torch.from_numpy(np.ascontiguousarray(text_rows)).to(device)}
    out_id = np.full((n, c), -1, np.int64)
    out_score = np.full((n, c), np.nan, np.float32)
    scorer = None
    try:
        with torch.inference_mode():
            if scoring == "joint":
                scorer = PairScorer(model, task, text, visual, chunk_size)
            tv = F.normalize(pooled_states(model, task, text, "text", chunk_size), dim=-1) \
                if scoring == "pooled" or shortlist is not None else None
            vv = F.normalize(pooled_states(model, task, visual, other, chunk_size), dim=-1) if tv is not None else None
            per_chunk = max(1, chunk_size // 4)
            short = ni if shortlist is None else min(shortlist, ni)
            total = n if scoring == "pooled" else n * short
            with tqdm(total=total, disable=not progress, unit="pair" if scoring == "joint" else "caption",
                      unit_scale=True, leave=False, dynamic_ncols=True, desc=f"mining {task}") as bar:
                for lo in range(0, n, per_chunk):
                    rows = range(lo, min(lo + per_chunk, n))
                    if tv is not None:  # the first stage: cosine, positives masked, its top k
                        first_stage = _masked(tv[lo: rows.stop] @ vv.T, rows, positives)
                        val, cols = torch.topk(first_stage, c if scoring == "pooled" else short, dim=1)
                    else:  # every image, positives masked
                        val = _masked(torch.zeros(len(rows), ni, device=device), rows, positives)
                        cols = torch.arange(ni, device=device).expand(len(rows), ni)
                    if scoring == "joint":
                        t_rows = torch.arange(lo, rows.stop, device=device)[:, None].expand_as(cols)
                        joint = scorer.score(t_rows.reshape(-1), cols.reshape(-1), bar).view(cols.shape)
                        joint = joint.masked_fill(torch.isinf(val), float("-inf"))
                        val, pick = torch.topk(joint, c, dim=1)
                        cols = cols.gather(1, pick)
                    else:
                        bar.update(len(rows))
                    val, col = val.float().cpu().numpy(), cols.cpu().numpy()
                    ok = np.isfinite(val)
                    out_id[lo: rows.stop] = np.where(ok, pool_ids[col], -1)
                    out_score[lo: rows.stop] = np.where(ok, val, np.nan)
            own = _own_scores(scorer, tv, vv, column, device)
    finally:
        model.train(was)
    best_neg = np.where(np.isnan(out_score[:, 0]), -np.inf, out_score[:, 0])
    report = {
        "task": task, "captions": int(n), "images": int(ni), "candidates": int(c), "scoring": scoring,
        "shortlist": None if scoring == "pooled" else (None if shortlist is None else int(short)),
        "pairs": int(scorer.pairs) if scorer else 0, "pairs_per_s": round(scorer.pairs_per_s, 1) if scorer else 0.0,
        "same_caption_excluded": int(sum(len(p) for p in positives) - n),
        "own_first": round(float(np.mean(own > best_neg)), 4),
        "overlap_with_data": _overlap(split, out_id),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    meta = {**(metadata or {}), **{k: report[k] for k in ("task", "captions", "images", "candidates", "scoring")}}
    if scoring == "joint":
        meta["shortlist"] = "all" if shortlist is None else short
    return MinedCandidates(ids, out_id, out_score, own, {k: str(v) for k, v in meta.items()}), report


def _own_scores(scorer: PairScorer | None, tv, vv, column: np.ndarray, device) -> np.ndarray:
    """``[N]``: each caption's score with its own image, in the mining stage's scoring."""
    col = torch.from_numpy(column).to(device)
    if scorer is not None:
        return scorer.score(torch.arange(len(column), device=device), col).float().cpu().numpy()
    return (tv * vv[col]).sum(-1).float().cpu().numpy()


def _overlap(split: Split, mined_id: np.ndarray) -> float | None:
    """The fraction of mined candidates that are among the split's own candidates (None without)."""
    have = split.arrays.get(CANDIDATE_KEYS[1])
    if have is None:
        return None
    have = np.asarray(have)
    real = mined_id >= 0
    hit = (mined_id[:, :, None] == have[:, None, :]).any(-1) & real
    return round(float(hit.sum() / max(int(real.sum()), 1)), 4)


__all__ = ["SCORING", "mine_candidates", "same_caption_columns"]
