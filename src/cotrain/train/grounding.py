"""The grounding-consistency analysis of 12-in-1 section 5, on a trained model.

On scenes that have both VQA questions and referring expressions, every (question, expression)
pair on the same scene is weighted by the concepts they share, and counts as consistent when the
question is answered right and the expression's referent is localised
(:mod:`cotrain.metrics.grounding`). In the procedural world the shared concept is the object itself:
a question's ``about_object`` and an expression's ``target_object`` (object indices within the
scene), so a pair weighs 1 when both are about the same object, else 0. Real data without those
arrays gives no pairs (the analysis then reports ``pairs: 0``).
"""

from __future__ import annotations

import numpy as np

from ..data.arrays import TaskData
from ..metrics.grounding import grounding_consistency, pair_records
from ..metrics.refexp import refexp_hits, select_regions
from ..metrics.vqa import vqa_scores_from_ids
from .evaluate import predict_split


def grounding_analysis(
    model, data: dict[str, TaskData], *, vqa_task: str = "vqa", refexp_tasks: tuple[str, ...] = ("refcoco", "refcoco+",
                                                                                                  "refcocog"),
    split: str = "test", question_splits: tuple[str, ...] | None = None, batch_size: int = 128,
    variant: str = "standard",
) -> dict:
    """:func:`grounding_consistency` of ``model`` over ``vqa_task`` and the ``refexp_tasks`` it has,
    plus ``tasks`` (the refexp tasks used).

    Expressions come from the refexp tasks' ``split``; questions from ``question_splits`` of the VQA
    task (default: the same split). As in the paper (RefCOCO test images that carry VQA
    annotations), the questions may come from every VQA split: pass data that was not cleaned, so
    the questions on the refexp test scenes are there (the model never trained on them under the
    clean split, which removed them)."""
    questions = []
    for qs in question_splits or (split,):
        if vqa_task not in data or "about_object" not in data[vqa_task].split(qs).arrays:
            continue
        s = data[vqa_task].split(qs)
        logits = predict_split(model, vqa_task, s, batch_size)
        acc = vqa_scores_from_ids(logits.argmax(1).numpy(), s.arrays["answers"])
        for i, (img, obj) in enumerate(zip(s.arrays["image_id"].tolist(), s.arrays["about_object"].tolist())):
            if obj >= 0:
                questions.append({"image_id": img, "correct": float(acc[i]), "concepts": [obj], "question_id": f"{qs}:{i}"})
    refs, used = [], []
    for task in refexp_tasks:
        if task not in data or "target_object" not in data[task].split(split).arrays:
            continue
        s = data[task].split(split)
        scores = predict_split(model, task, s, batch_size)
        a = s.arrays
        idx = select_regions(scores, s.column("region_mask")).numpy()
        chosen = np.asarray(s.column("boxes"))[np.arange(len(idx)), idx]
        hits = refexp_hits(chosen, a["target_box"], variant, image_size=data[task].meta.get("image_size")).numpy()
        for i, (img, obj) in enumerate(zip(a["image_id"].tolist(), a["target_object"].tolist())):
            refs.append({"image_id": img, "localised": bool(hits[i]), "concepts": [obj], "ref_id": f"{task}:{i}"})
        used.append(task)
    result = grounding_consistency(pair_records(questions, refs)) if questions and refs else {"pairs": 0}
    result["tasks"] = used
    return result
