"""Evaluation of the vision-and-language metrics on one split (see docs/vl-contract.md).

- ``vqa``: official VQA accuracy of the top answer against the 10 annotator answers (by answer id;
  with an ``answers_raw`` array of the annotators' strings, by string with the run's
  ``vqa_version`` normalisation: official, legacy or always_normalise). Chance: always answering
  the train split's most frequent answer. With an ``answer_type`` array, ``details`` holds the
  accuracy per answer type (``{"yes/no": ..., "number": ..., "other": ...}``, the types present),
  as the official evaluation reports it.
- ``refexp``: the top-scoring real proposal's box against ``target_box`` (IoU >= 0.5, or the
  ``12in1`` / ``giou`` variants of ``run.refexp_iou``). Chance: picking a real proposal uniformly.
- ``recall``: every caption of the split against every distinct image of the split (the pool);
  the value is caption→image R@1 and ``details`` holds R@1/5/10 both directions. Chance: 1 / pool.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.arrays import Split, TaskData
from ..metrics.refexp import refexp_accuracy_from_scores
from ..metrics.retrieval import recall_at_k
from ..metrics.vqa import vqa_accuracy_from_ids, vqa_scores, vqa_scores_from_ids
from ..metrics.vqa_types import accuracy_per_answer_type


def _rows(split: Split, batch_size: int, max_batches: int | None) -> int:
    return len(split) if max_batches is None else min(len(split), max_batches * batch_size)


def evaluate_vl_task(
    model, task: str, data: TaskData, metric: str, split: str = "val", batch_size: int = 128,
    max_batches: int | None = None, device: str = "cpu", options=None,
) -> dict:
    """``{"metric", "value", "chance", "n"}`` (+ ``details`` for retrieval and typed VQA) of a V&L task."""
    from .evaluate import predict_split

    s = data.split(split)
    n = _rows(s, batch_size, max_batches)
    if n == 0:
        raise ValueError(f"task {task!r}: the {split} split is empty")
    if metric == "recall":
        return _recall(model, task, s, n, batch_size, device)
    logits, _ = predict_split(model, task, s, batch_size, max_batches, device)
    if metric == "vqa":
        return _vqa(logits, s, data, n, getattr(options, "vqa_version", "official"))
    if metric == "refexp":
        return _refexp(logits, s, data, n, getattr(options, "refexp_iou", "standard"))
    raise ValueError(f"unknown vision-and-language metric {metric!r}; use vqa, recall or refexp")


def _vqa(logits: torch.Tensor, s: Split, data: TaskData, n: int, version: str) -> dict:
    if "answers" not in s.arrays:
        raise ValueError(f"task {data.name!r}: a VQA split needs an `answers` array [N, 10]")
    answers = s.arrays["answers"][:n]
    pred = logits.argmax(dim=1).numpy()
    if "answers_raw" in s.arrays:
        names = data.class_names
        scores = vqa_scores([names[i] for i in pred], s.arrays["answers_raw"][:n].tolist(), version=version)
    else:
        scores = vqa_scores_from_ids(pred, answers)
    prior = np.asarray(data.train.arrays["label"], dtype=np.float64).sum(axis=0)
    chance = vqa_accuracy_from_ids(np.full(n, int(prior.argmax())), answers)
    out = {"metric": "vqa", "value": float(scores.mean()), "chance": float(chance), "n": int(n)}
    if "answer_type" in s.arrays:
        per_type = accuracy_per_answer_type(scores, s.arrays["answer_type"][:n])
        if per_type:
            out["details"] = {k: round(v, 5) for k, v in per_type.items()}
    return out


def answer_type_lines(results: dict[str, dict]) -> list[str]:
    """One line per VQA result with per-answer-type ``details``, for below the results table:
    ``"vqa by answer type: yes/no 0.750 | number 0.300 | other 0.900"``."""
    return [f"{name} by answer type: " + " | ".join(f"{k} {v:.3f}" for k, v in r["details"].items())
            for name, r in results.items() if r.get("metric") == "vqa" and r.get("details")]


def _refexp(scores: torch.Tensor, s: Split, data: TaskData, n: int, variant: str) -> dict:
    missing = [k for k in ("boxes", "region_mask", "target_box") if k not in s]
    if missing:
        raise ValueError(f"task {data.name!r}: a referring-expression split needs arrays {missing}")
    boxes, mask = s.column("boxes", slice(0, n)), np.asarray(s.column("region_mask", slice(0, n)), dtype=bool)
    value = refexp_accuracy_from_scores(
        scores, boxes, mask, s.column("target_box", slice(0, n)), variant=variant,
        image_size=data.meta.get("image_size"),
    )
    good = (np.asarray(s.column("label", slice(0, n))) > 0) & mask
    chance = float(np.mean(good.sum(1) / np.maximum(mask.sum(1), 1)))
    return {"metric": "refexp", "value": float(value), "chance": chance, "n": int(n)}


@torch.inference_mode()
def _recall(model, task: str, s: Split, n: int, batch_size: int, device: str) -> dict:
    a = s.arrays
    if a["text"].ndim != 2 or "image_id" not in a or np.asarray(a["image_id"]).ndim != 1:
        raise ValueError(f"task {task!r}: a retrieval eval split needs one caption per row with its `image_id` [N]")
    ids = np.asarray(a["image_id"][:n])
    pool, first, caption_image = np.unique(ids, return_index=True, return_inverse=True)
    visual = {k: torch.from_numpy(np.ascontiguousarray(s.column(k, first))).to(device)
              for k in ("regions", "boxes", "region_mask", "image") if k in s}
    text = torch.from_numpy(np.ascontiguousarray(a["text"][:n])).to(device)
    was_training = model.training
    model.eval()
    try:
        scores = model.score_pairs(text, visual, task, chunk_size=max(batch_size, 256)).float().cpu()
    finally:
        model.train(was_training)
    details = recall_at_k(scores, caption_image)
    return {"metric": "recall", "value": details["c2i_r1"], "chance": 1.0 / len(pool), "n": int(n),
            "details": {k: round(v, 5) for k, v in details.items()}}
