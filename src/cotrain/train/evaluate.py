"""Evaluation of one task on one split: ONE path, keyed by the task's metric (:data:`METRICS`).

Each evaluator returns ``{"metric", "value", "chance", "n"}`` (+ ``details`` where the metric has
more than one number); :func:`evaluate_task` adds ``eval_time_s``, the seconds it took:

- ``top1`` / ``mAP``: argmax accuracy (multi-label targets: the argmax must be a positive) or mean
  average precision over sigmoid scores. Chance: the train split's majority class (top1) or the
  positives' rate (mAP).
- ``vqa``: official VQA accuracy of the top answer against the 10 annotator answers (by answer id;
  with an ``answers_raw`` array of the annotators' strings, by string with the run's
  ``vqa_version`` normalisation: official, legacy or always_normalise). Chance: always answering
  the train split's most frequent answer. With an ``answer_type`` array, ``details`` holds the
  accuracy per answer type, as the official evaluation reports it.
- ``refexp``: the top-scoring real proposal's box against ``target_box`` (IoU >= 0.5, or the
  ``12in1`` / ``giou`` variants of ``run.refexp_iou``). Chance: picking a real proposal uniformly.
- ``recall``: every caption of the split against every distinct image of the split (the pool,
  capped on test by ``tasks[].retrieval.test_pool``; :mod:`cotrain.train.retrieval_eval`); the
  value is caption→image R@1, ``details`` holds R@1/5/10 both directions, ``chance_details`` the
  same for a random ranking, ``pool`` the images and captions. Chance: 1 / images.
- ``detection``: COCO box AP@[.50:.95] by pycocotools' COCOeval itself (:mod:`cotrain.metrics.detection`)
  over the head's post-processed detections (absolute ``xyxy`` in the original size, every query
  kept); ``details`` holds AP50, AP75, AP by size and AR@100. Chance: 0.
- ``pretrain``: each batch goes through the task's transforms (masking, mismatched captions) with a
  generator of fixed seed, so every evaluation masks alike; the value is the masked-word accuracy of
  the matched rows, ``details`` the matching accuracy, the masked-region loss and the number of
  masked tokens (:mod:`cotrain.metrics.pretrain`). Chance: always the most frequent masked word.
  Only this metric applies ``transforms``; the others score the data as it is.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import partial
from typing import Callable

import numpy as np
import torch

from ..config import ConfigError
from ..heads.pretrain import PretrainHead
from ..data.arrays import Split, TaskData, batch_to, iterate_once
from ..metrics.classification import chance_level, mean_average_precision, top1
from ..metrics.pretrain import PretrainTally
from ..metrics.refexp import refexp_accuracy_from_scores
from ..metrics.vqa import vqa_accuracy_from_ids, vqa_scores, vqa_scores_from_ids
from ..metrics.vqa_types import accuracy_per_answer_type
from .retrieval_eval import evaluate_retrieval, retrieval_lines

PAIR_CHUNK = 2048  # retrieval: (caption, image) pairs per trunk pass (a larger eval batch size raises it)


@contextmanager
def evaluating(model):
    """``model`` in eval mode for the block, its training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def batches(split: Split, batch_size: int, max_batches: int | None, device: str):
    """The split's batches in order (the first ``max_batches``), on ``device``."""
    for i, batch in enumerate(iterate_once(split, batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        yield batch_to(batch, device)


@torch.inference_mode()
def predict_split(
    model, task: str, split: Split, batch_size: int, max_batches: int | None = None, device: str = "cpu"
) -> torch.Tensor:
    """The head's predictions (logits / scores) for (the first ``max_batches`` batches of) a split."""
    with evaluating(model):
        return torch.cat([model(batch, task).float().cpu() for batch in batches(split, batch_size, max_batches, device)])


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


def _classes(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=()) -> dict:
    logits = predict_split(model, task, s, bs, mb, device)
    labels = np.asarray(s.column("label", slice(0, n)))
    chance = chance_level(data.train.arrays["label"], labels, kind=metric)
    return {"metric": metric, "value": score(metric, logits, torch.from_numpy(labels)), "chance": float(chance),
            "n": int(n)}


def _vqa(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=()) -> dict:
    if "answers" not in s.arrays:
        raise ValueError(f"task {data.name!r}: a VQA split needs an `answers` array [N, 10]")
    logits = predict_split(model, task, s, bs, mb, device)
    answers = s.arrays["answers"][:n]
    pred = logits.argmax(dim=1).numpy()
    if "answers_raw" in s.arrays:
        names = data.class_names
        version = getattr(options, "vqa_version", "official")
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


def _refexp(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=()) -> dict:
    missing = [k for k in ("boxes", "region_mask", "target_box") if k not in s]
    if missing:
        raise ValueError(f"task {data.name!r}: a referring-expression split needs arrays {missing}")
    scores = predict_split(model, task, s, bs, mb, device)
    rows = slice(0, n)
    boxes, mask = s.column("boxes", rows), np.asarray(s.column("region_mask", rows), dtype=bool)
    value = refexp_accuracy_from_scores(
        scores, boxes, mask, s.column("target_box", rows), variant=getattr(options, "refexp_iou", "standard"),
        image_size=data.meta.get("image_size"),
    )
    good = (np.asarray(s.column("label", rows)) > 0) & mask
    chance = float(np.mean(good.sum(1) / np.maximum(mask.sum(1), 1)))
    return {"metric": "refexp", "value": float(value), "chance": chance, "n": int(n)}


def _recall(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=(), *,
            split="val", retrieval=None) -> dict:
    with evaluating(model):
        return evaluate_retrieval(model, task, s, n, device, split=split, retrieval=retrieval,
                                  chunk_size=max(bs, PAIR_CHUNK), progress=bool(getattr(options, "progress", False)))


@torch.inference_mode()
def _detection(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=()) -> dict:
    from ..metrics.detection import coco_map, ground_truth_from_split

    missing = [k for k in ("target_boxes", "target_classes", "orig_size", "image_id") if k not in s]
    if missing:
        raise ValueError(f"task {data.name!r}: a detection split needs arrays {missing}")
    head = model.head(task)
    detections = []
    with evaluating(model):
        for batch in batches(s, bs, mb, device):
            found = head.postprocess(model(batch, task), batch["orig_size"])  # boxes / scores float32 already
            detections += [{"image_id": int(i), **{k: v.cpu().numpy() for k, v in r.items()}}
                           for i, r in zip(batch["image_id"].tolist(), found)]
    truth = ground_truth_from_split(s)[:n]
    stats = coco_map(detections, truth, category_ids=data.meta.get("category_ids"))
    details = {k: round(stats[k], 5) for k in ("AP50", "AP75", "APs", "APm", "APl", "AR100")}
    return {"metric": "detection", "value": stats["AP"], "chance": 0.0, "n": int(n), "details": details}


EVAL_MASK_SEED = 0  # the pretrain metric's transforms: the same masks at every evaluation


@torch.inference_mode()
def _pretrain(model, task, data: TaskData, s: Split, n: int, metric: str, bs, mb, device, options, transforms=()) -> dict:
    head = model.head(task)
    if not isinstance(head, PretrainHead):
        raise ConfigError(f"task {task!r}: the pretrain metric needs a pretrain head, not {getattr(head, 'kind', type(head).__name__)!r}")
    if not transforms:
        raise ConfigError(f"task {task!r}: the pretrain metric masks the evaluation batches with the task's "
                          f"transforms (tasks[{task}].transforms: mask_text, match_pairs, mask_regions); none were given")
    tally = PretrainTally()
    gen = torch.Generator().manual_seed(EVAL_MASK_SEED)
    with evaluating(model):
        for batch in batches(s, bs, mb, device):
            for f in transforms:
                batch = f(batch, gen)
            preds = model(batch, task)
            terms = head.losses(preds, batch)
            if "mlm" in preds:
                tally.add_words(preds["mlm"], head.word_targets(preds, batch))
            if "itm" in preds:
                tally.add_itm(preds["itm"], batch["itm_label"])
            if "mrm" in terms:
                tally.add_mrm(float(terms["mrm"]), int(terms["stat_masked_regions"]))
    return {"metric": "pretrain", **tally.result(), "n": int(n)}


METRICS: dict[str, Callable[..., dict]] = {
    "top1": _classes,
    "mAP": _classes,
    "vqa": _vqa,
    "refexp": _refexp,
    "recall": _recall,
    "detection": _detection,
    "pretrain": _pretrain,
}


def evaluate_task(
    model, task: str, data: TaskData, metric: str, split: str = "val", batch_size: int = 128,
    max_batches: int | None = None, device: str = "cpu", options=None, transforms: list | tuple = (), retrieval=None,
) -> dict:
    """``{"metric", "value", "chance", "n", "eval_time_s"}`` (+ ``details``) of ``task`` on ``split``
    with ``metric``. ``options``: anything with ``vqa_version``, ``refexp_iou`` and ``progress`` (the
    run config); ``transforms``: the task's batch transforms, ``(batch, generator) -> batch``
    (:mod:`cotrain.data.transforms`), which the ``pretrain`` metric applies to every batch (the others
    ignore them); ``retrieval``: the task's ``tasks[].retrieval`` (recall only; None: the defaults)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    s = data.split(split)
    n = len(s) if max_batches is None else min(len(s), max_batches * batch_size)
    if n == 0:
        raise ValueError(f"task {task!r}: the {split} split is empty")
    fn = partial(METRICS[metric], split=split, retrieval=retrieval) if metric == "recall" else METRICS[metric]
    t0 = time.perf_counter()
    out = fn(model, task, data, s, n, metric, batch_size, max_batches, device, options, list(transforms))
    out["eval_time_s"] = round(time.perf_counter() - t0, 2)
    return out


def record_fields(task: str, r: dict) -> dict:
    """The flat fields of one task's result in a log.jsonl / history record: ``{task}/{metric}``, and
    for retrieval the pool's ``{task}/pool_images`` and ``{task}/pool_captions``."""
    out = {f"{task}/{r['metric']}": round(r["value"], 5)}
    if "pool" in r:
        out.update({f"{task}/pool_images": r["pool"]["images"], f"{task}/pool_captions": r["pool"]["captions"]})
    return out


def answer_type_lines(results: dict[str, dict]) -> list[str]:
    """Lines for below the results table: per VQA result its per-answer-type ``details``
    (``"vqa by answer type: yes/no 0.750 | number 0.300 | other 0.900"``), per detection result its
    COCO figures (``"detect: AP50 0.612 | AP75 0.305 | ..."``), per retrieval result its pool and
    R@1/5/10 both directions with chance (:func:`cotrain.train.retrieval_eval.retrieval_lines`), per
    pretrain result its matching accuracy, masked-region loss and masked-token count."""
    lines = []
    for name, r in results.items():
        lines += retrieval_lines(name, r)
        if r.get("metric") == "vqa" and r.get("details"):
            lines.append(f"{name} by answer type: " + " | ".join(f"{k} {v:.3f}" for k, v in r["details"].items()))
        elif r.get("metric") == "detection" and r.get("details"):
            lines.append(f"{name} (COCO box AP@[.50:.95] above): " + " | ".join(f"{k} {v:.3f}" for k, v in r["details"].items()))
        elif r.get("metric") == "pretrain" and r.get("details"):
            lines.append(f"{name} (masked-word accuracy above): "
                         + " | ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.3f}" for k, v in r["details"].items()))
    return lines


__all__ = ["METRICS", "answer_type_lines", "evaluate_task", "predict_split", "record_fields", "score"]
