"""Retrieval evaluation of a split's pool: every caption against every distinct image, in minutes.

The pool is the split's captions (one per row, the first ``n``) and their distinct images
(``image_id``). With ``tasks[].retrieval.test_pool`` set, the test split keeps that many of its
images (a fixed seeded choice, the same every run) with their captions, and the result says so.

Scoring (``tasks[].retrieval.rerank_top_k``):

- ``None``: the full trunk on every (caption, image) pair (:class:`cotrain.pair_scoring.PairScorer`,
  each stream's own layers run once).
- ``k``: a first stage scores every pair by the dot product of the pooled single-stream states
  (:meth:`Model.pooled_single`: ``h_CLS`` of the caption alone · ``h_IMG`` of the image alone); the
  full trunk then re-scores each caption's top k images (for caption->image) and each image's top
  k captions (for image->caption). In each list the re-scored items come first, in full-trunk
  order, and the others follow in first-stage order (:func:`rerank_order`); with ``k`` at least the
  pool size both directions equal the full ranking.

The result: ``{"metric": "recall", "value": c2i R@1, "chance": 1 / images, "n": captions,
"details": R@1/5/10 both directions, "chance_details": the same for a random ranking, "pool":
{"images", "captions"}, "scoring": how, "pairs": pairs through the full trunk, "pairs_per_s"}`` and
``"test_pool"`` (``"100 of 1391 images"``) when the cap applied. A progress bar counts the pairs.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RetrievalConfig
from ..data.arrays import Split
from ..encoders import entry
from ..metrics.retrieval import chance_recall, recall_at_k, recall_from_ranks, retrieval_ranks
from ..pair_scoring import PairScorer, pool_kind

POOL_SEED = 0  # the test_pool choice


def pool_rows(image_ids, cap: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(caption_rows [Nc], image_rows [Ni], caption_image [Nc], images_before_cap)`` of captions whose
    ``image_ids [N]`` are given: one row per distinct image (its first), each kept caption's pool
    column. ``cap``: keep that many images (a seeded choice, sorted by id) and their captions."""
    ids = np.asarray(image_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"a retrieval pool needs image ids [N] with N >= 1, got shape {ids.shape}")
    _, first, caption_image = np.unique(ids, return_index=True, return_inverse=True)
    total = len(first)
    captions = np.arange(len(ids))
    if cap is not None and cap < total:
        keep = np.sort(np.random.default_rng(POOL_SEED).choice(total, cap, replace=False))
        column = np.full(total, -1)
        column[keep] = np.arange(cap)
        captions = np.flatnonzero(column[caption_image] >= 0)
        first, caption_image = first[keep], column[caption_image[captions]]
    return captions, first, caption_image.astype(np.int64), total


def _dense_ranks(x: np.ndarray) -> np.ndarray:
    """Per row, each entry's ascending dense rank (equal values share a rank): ``[R, C]`` float64."""
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    steps = np.concatenate([np.zeros((x.shape[0], 1)), xs[:, 1:] != xs[:, :-1]], axis=1).cumsum(axis=1)
    out = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(out, order, steps, axis=1)
    return out


def rerank_order(first: np.ndarray, top: np.ndarray, full: np.ndarray) -> np.ndarray:
    """Scores ``[R, C]`` whose order per row is: the entries ``top [R, k]`` (column indices) by their
    full-trunk scores ``full [R, k]``, above every other entry, those by the first-stage scores
    ``first [R, C]``. Exact: the values are dense ranks, so ties in either stage stay ties."""
    rows = np.arange(first.shape[0])[:, None]
    rest = np.array(first, dtype=np.float64)
    rest[rows, top] = -np.inf
    out = _dense_ranks(rest)
    out[rows, top] = out.max(axis=1, keepdims=True) + 1 + _dense_ranks(np.asarray(full, dtype=np.float64))
    return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices ``[R, min(k, C)]`` of each row's k highest scores (in no particular order)."""
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(k), (len(scores), 1))


@torch.inference_mode()
def pooled_states(model, task: str, batch: dict[str, torch.Tensor], kind: str, chunk_size: int) -> torch.Tensor:
    """``[N, D]`` float32: :meth:`Model.pooled_single` of ``batch`` (``kind``'s arrays ``[N, ...]``),
    ``chunk_size`` rows at a time."""
    n = next(iter(batch.values())).shape[0]
    return torch.cat([model.pooled_single({k: v[lo : lo + chunk_size] for k, v in batch.items()}, task, kind)
                      for lo in range(0, n, chunk_size)]).float()


@torch.inference_mode()
def first_stage(model, task: str, text: dict[str, torch.Tensor], visual: dict[str, torch.Tensor],
                chunk_size: int) -> np.ndarray:
    """``[Nt, Ni]`` float64: ``pooled_single(text) · pooled_single(visual)`` of every pair."""
    t = pooled_states(model, task, text, "text", chunk_size)
    v = pooled_states(model, task, visual, pool_kind(model, task), chunk_size)
    return (t @ v.T).double().cpu().numpy()


def reranked_ranks(first: np.ndarray, k: int, scorer: PairScorer, caption_image: np.ndarray,
                   bar=None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(c2i ranks [Nc], i2c ranks [Ni], pairs scored)``: each caption's top k images and each image's
    top k captions of the first stage ``first [Nc, Ni]`` re-scored by the full trunk (each distinct
    pair once), the rest kept in first-stage order (:func:`rerank_order`)."""
    nc, ni = first.shape
    top_c = _top(first, k)  # [Nc, k] image columns per caption
    top_i = _top(first.T, k)  # [Ni, k] caption rows per image
    pair_c = np.arange(nc)[:, None] * ni + top_c
    pair_i = top_i * ni + np.arange(ni)[:, None]
    pairs, where = np.unique(np.concatenate([pair_c.ravel(), pair_i.ravel()]), return_inverse=True)
    if bar is not None:
        bar.reset(total=len(pairs))
    full = scorer.score(torch.from_numpy(pairs // ni), torch.from_numpy(pairs % ni), bar).double().cpu().numpy()[where]
    c2i_full, i2c_full = full[: pair_c.size].reshape(top_c.shape), full[pair_c.size :].reshape(top_i.shape)
    c2i, _ = retrieval_ranks(rerank_order(first, top_c, c2i_full), caption_image)
    _, i2c = retrieval_ranks(rerank_order(first.T, top_i, i2c_full).T, caption_image)
    return c2i, i2c, len(pairs)


def evaluate_retrieval(model, task: str, s: Split, n: int, device: str = "cpu", *, split: str = "val",
                       retrieval: RetrievalConfig | None = None, chunk_size: int = 2048, progress: bool = False) -> dict:
    """The recall result of ``task`` on the first ``n`` captions of split ``s`` (see the module
    docstring). The model is used as it is (the caller puts it in eval mode)."""
    cfg = retrieval or RetrievalConfig()
    a = s.arrays
    if a["text"].ndim != 2 or "image_id" not in a or np.asarray(a["image_id"]).ndim != 1:
        raise ValueError(f"task {task!r}: a retrieval eval split needs one caption per row with its `image_id` [N]")
    cap = cfg.test_pool if split == "test" else None
    captions, images, caption_image, total = pool_rows(np.asarray(a["image_id"][:n]), cap)
    other = pool_kind(model, task)
    visual = {k: torch.from_numpy(np.ascontiguousarray(s.column(k, images))).to(device)
              for k in entry(other).keys if k in s}
    text = {"text": torch.from_numpy(np.ascontiguousarray(s.column("text", captions))).to(device)}
    nc, ni = len(captions), len(images)
    k = cfg.rerank_top_k
    with tqdm(total=nc * ni, disable=not progress, unit="pair", unit_scale=True, leave=False, dynamic_ncols=True,
              desc=f"{task} {split} pool {ni}x{nc}") as bar:
        scorer = PairScorer(model, task, text, visual, chunk_size)
        if k is None:
            scores = scorer.all_pairs(bar).cpu()
            details = recall_at_k(scores, caption_image)
            how = "full trunk on every pair"
        else:
            first = first_stage(model, task, text, visual, chunk_size)
            c2i, i2c, _ = reranked_ranks(first, k, scorer, caption_image, bar)
            details = recall_from_ranks(c2i, i2c)
            how = f"re-ranked top {k} of a pooled-state first stage"
    out = {"metric": "recall", "value": details["c2i_r1"], "chance": 1.0 / ni, "n": int(nc),
           "details": {key: round(v, 5) for key, v in details.items()},
           "chance_details": {key: round(v, 5) for key, v in chance_recall(caption_image, ni).items()},
           "pool": {"images": int(ni), "captions": int(nc)}, "scoring": how,
           "pairs": int(scorer.pairs), "pairs_per_s": round(scorer.pairs_per_s, 1)}
    if ni < total:
        out["test_pool"] = f"{ni} of {total} images"
    return out


def retrieval_lines(name: str, r: dict) -> list[str]:
    """Lines for below the results table: the pool and how it was scored, then R@1/5/10 and their
    chance per direction. Nothing for a result without ``pool`` (an older run's)."""
    if r.get("metric") != "recall" or "pool" not in r or not r.get("details"):
        return []
    p, d, c = r["pool"], r["details"], r.get("chance_details", {})
    head = f"{name} retrieval, pool {p['images']:,} images x {p['captions']:,} captions"
    if r.get("test_pool"):
        head += f" (test_pool: {r['test_pool']})"
    head += f"; {r.get('scoring', 'full trunk on every pair')}"
    if r.get("pairs_per_s"):
        head += f", {r['pairs']:,} pairs at {r['pairs_per_s']:,.0f} pairs/s"
    if r.get("eval_time_s") is not None:
        head += f", {r['eval_time_s']:.1f} s"
    lines = [head + ":"]
    for key, label in (("c2i", "caption->image"), ("i2c", "image->caption")):
        ks = [k for k in d if k.startswith(key + "_r")]
        got = " | ".join(f"R@{k.split('_r')[1]} {d[k]:.3f}" for k in ks)
        chance = " | ".join(f"{c[k]:.3f}" for k in ks if k in c)
        lines.append(f"  {label} {got}" + (f" (chance {chance})" if chance else ""))
    return lines


__all__ = ["evaluate_retrieval", "first_stage", "pool_rows", "pooled_states", "rerank_order", "reranked_ranks", "retrieval_lines"]
