"""Evaluation of one task on one split: the task's metric, computed over the whole split."""

from __future__ import annotations

import numpy as np
import torch

from ..data.arrays import Split, TaskData, batch_to, iterate_once
from ..metrics.classification import chance_level, mean_average_precision, top1


@torch.inference_mode()
def predict_split(
    model, task: str, split: Split, batch_size: int, max_batches: int | None = None, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` and labels for (the first ``max_batches`` batches of) a split."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for i, batch in enumerate(iterate_once(split, batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        batch = batch_to(batch, device)
        logits.append(model(batch, task).float().cpu())
        labels.append(batch["label"].cpu())
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def score(metric: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """``top1`` on argmax (single-label) or ``mAP`` over sigmoid scores (multi-label)."""
    if metric == "top1":
        if labels.ndim == 2:  # multi-label targets scored by top-1: the argmax must be a positive
            hit = labels.gather(1, logits.argmax(1, keepdim=True)).squeeze(1) > 0
            return float(hit.float().mean())
        return top1(logits, labels)
    if metric == "mAP":
        targets = labels if labels.ndim == 2 else torch.nn.functional.one_hot(labels, logits.shape[1])
        return mean_average_precision(torch.sigmoid(logits).numpy(), targets.numpy())
    raise ValueError(f"unknown metric {metric!r}; use top1 or mAP")


HEAD_METRICS = {"vqa": "vqa", "retrieval": "recall", "refexp": "refexp", "nlvr": "top1", "snli-ve": "top1"}


def task_metric(task_cfg, data: TaskData) -> str:
    """The task's ``metric``, or its head's own: top1 / vqa / recall / refexp."""
    if task_cfg.metric is not None:
        return task_cfg.metric
    return HEAD_METRICS.get(data.meta.get("head_type"), "top1")


def evaluate_task(
    model,
    task: str,
    data: TaskData,
    metric: str,
    split: str = "val",
    batch_size: int = 128,
    max_batches: int | None = None,
    device: str = "cpu",
    options=None,
) -> dict:
    """``{"metric", "value", "chance", "n"}`` for one task on one split (V&L metrics add their
    details, e.g. every recall@K). ``options``: anything with ``vqa_version`` and ``refexp_iou``
    (the run config)."""
    if metric in ("vqa", "recall", "refexp"):
        from .vl_evaluate import evaluate_vl_task

        return evaluate_vl_task(model, task, data, metric, split, batch_size, max_batches, device, options)
    logits, labels = predict_split(model, task, data.split(split), batch_size, max_batches, device)
    n = len(labels)
    test_labels = data.split(split).arrays["label"][:n]
    chance = chance_level(data.train.arrays["label"], np.asarray(test_labels), kind=metric)
    return {"metric": metric, "value": score(metric, logits, labels), "chance": float(chance), "n": int(n)}
