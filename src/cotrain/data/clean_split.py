"""The clean multi-task split (12-in-1 section 2.2, Table 1): no test image in any train/val.

Many V&L datasets share images (COCO underlies VQA, RefCOCO, GuessWhat, ...), so a model trained
jointly could see a test image of one task annotated by another task's train split. The clean split
removes from every selected task's ``train`` and ``val`` each row whose image is in the ``test`` split
of *any* selected task; test splits are never changed. The paper reports ~11% less training data
on average across datasets.

Input (per task): ``{"train": ids, "val": ids, "test": ids}``, each ``image_id`` int64 ``[N]`` or
``[N, K]`` (K images per row, e.g. NLVR2 K = 2; a row goes if ANY of its K images is a test image).
Output: per task boolean keep-masks ``{"train": [N_train], "val": [N_val]}`` and a report
(:func:`clean_splits`), printable with :func:`format_clean_report`. A retrieval train split's hard
candidates (``candidate_id`` ``[N, C]``, which negatives are drawn from) do not cost a row its place:
:func:`clean_task_data` masks each test image among them (-1 in ``candidate_index`` / ``candidate_id``).
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
CLEANED = ("train", "val")


def _ids(task: str, split: str, ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim not in (1, 2):
        raise ValueError(f"task {task!r} split {split!r}: image_id must be [N] or [N, K], got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"task {task!r} split {split!r}: image_id must be integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check(tasks: dict) -> dict[str, dict[str, np.ndarray]]:
    if not tasks:
        raise ValueError("clean_splits needs at least one task")
    out = {}
    for task, splits in tasks.items():
        missing = [s for s in SPLITS if s not in splits]
        extra = sorted(set(splits) - set(SPLITS))
        if missing or extra:
            raise ValueError(f"task {task!r}: need exactly the splits {list(SPLITS)}; "
                             f"missing {missing}, unexpected {extra}")
        out[task] = {s: _ids(task, s, splits[s]) for s in SPLITS}
    return out


def _pct(before: int, after: int) -> float:
    return 100.0 * (before - after) / before if before else 0.0


def clean_splits(tasks: dict[str, dict[str, np.ndarray]]) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Keep-masks that drop every train/val row sharing an image with any selected task's test split.

    Args:
        tasks: task name -> ``{"train", "val", "test"}`` -> ``image_id`` int ``[N]`` or ``[N, K]``.

    Returns:
        ``(cleaned, report)``. ``cleaned[task]`` = ``{"train": bool [N_train], "val": bool [N_val]}``
        (True = keep). ``report``:

        - ``tasks[task][split]`` for split in train/val/test: ``rows_before``, ``rows_after``,
          ``images_before``, ``images_after`` (distinct image ids), ``removed_pct`` (rows);
        - ``tasks[task]["train+val"]``: the same over both cleaned splits together;
        - ``test_images``: distinct images in the union of all test splits;
        - ``rows_before`` / ``rows_after`` / ``total_reduction_pct``: train+val rows of all tasks pooled;
        - ``mean_reduction_pct``: the mean over tasks (with train/val rows) of each task's train+val
          row reduction, the "average across datasets" of the paper's ~11%;
        - ``overlap[row][col]``: % of task ``row``'s distinct test images present in task ``col``'s
          train or val before cleaning (the paper's Table 1).
    """
    data = _check(tasks)
    test_pool = np.unique(np.concatenate([d["test"].ravel() for d in data.values()]))
    cleaned, per_task = {}, {}
    for task, d in data.items():
        masks, rep = {}, {}
        for split in SPLITS:
            ids = d[split]
            if split in CLEANED:
                hit = np.isin(ids, test_pool)
                keep = ~hit.any(axis=1) if ids.ndim == 2 else ~hit
                masks[split] = keep
            else:
                keep = np.ones(len(ids), dtype=bool)
            rep[split] = _split_report(ids, keep)
        rep["train+val"] = _combine(rep["train"], rep["val"],
                                    np.concatenate([d["train"].ravel(), d["val"].ravel()]),
                                    np.concatenate([_kept_ids(d["train"], masks["train"]),
                                                    _kept_ids(d["val"], masks["val"])]))
        cleaned[task], per_task[task] = masks, rep
    before = sum(r["train+val"]["rows_before"] for r in per_task.values())
    after = sum(r["train+val"]["rows_after"] for r in per_task.values())
    with_rows = [r["train+val"]["removed_pct"] for r in per_task.values() if r["train+val"]["rows_before"]]
    report = {
        "tasks": per_task,
        "test_images": int(len(test_pool)),
        "rows_before": before,
        "rows_after": after,
        "total_reduction_pct": _pct(before, after),
        "mean_reduction_pct": float(np.mean(with_rows)) if with_rows else 0.0,
        "overlap": _overlap(data),
    }
    return cleaned, report


def _kept_ids(ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return ids[keep].ravel()


def _split_report(ids: np.ndarray, keep: np.ndarray) -> dict:
    n = len(ids)
    kept = int(keep.sum())
    return {"rows_before": n, "rows_after": kept,
            "images_before": int(len(np.unique(ids))), "images_after": int(len(np.unique(ids[keep]))),
            "removed_pct": _pct(n, kept)}


def _combine(a: dict, b: dict, ids_before: np.ndarray, ids_after: np.ndarray) -> dict:
    n, kept = a["rows_before"] + b["rows_before"], a["rows_after"] + b["rows_after"]
    return {"rows_before": n, "rows_after": kept,
            "images_before": int(len(np.unique(ids_before))), "images_after": int(len(np.unique(ids_after))),
            "removed_pct": _pct(n, kept)}


def _overlap(data: dict) -> dict[str, dict[str, float]]:
    trainval = {t: np.unique(np.concatenate([d["train"].ravel(), d["val"].ravel()])) for t, d in data.items()}
    out = {}
    for row, d in data.items():
        test = np.unique(d["test"])
        out[row] = {col: (100.0 * float(np.isin(test, tv).mean()) if len(test) else 0.0)
                    for col, tv in trainval.items()}
    return out


def apply_keep(split_arrays: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """Select the kept rows (first axis) of every array of one split.

    Args:
        split_arrays: key -> array with N rows (any trailing shape, or a ``Ragged``; e.g. a ``Split``'s
            arrays; a split's stores are per image and need no selection).
        keep: bool ``[N]``, a mask from :func:`clean_splits`.
    """
    keep = np.asarray(keep)
    if keep.dtype != bool or keep.ndim != 1:
        raise ValueError(f"keep must be a 1-D boolean mask, got dtype {keep.dtype} shape {keep.shape}")
    from cotrain.data.ragged import Ragged

    out = {}
    for key, arr in split_arrays.items():
        a = arr if isinstance(arr, Ragged) else np.asarray(arr)
        rows = len(a) if isinstance(a, Ragged) or a.ndim else None
        if rows != len(keep):
            raise ValueError(f"array {key!r} has {'no' if rows is None else rows} rows but the mask has {len(keep)}")
        out[key] = a[keep]
    return out


def format_clean_report(report: dict) -> str:
    """Markdown: one row per task and split (rows, distinct images, % removed), the totals, and the
    test-image overlap matrix (row task's test images in column task's train/val, as Table 1)."""
    lines = ["| task | split | rows before | rows after | removed % | images before | images after |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for task, rep in report["tasks"].items():
        for split in ("train", "val", "train+val", "test"):
            r = rep[split]
            lines.append(f"| {task} | {split} | {r['rows_before']} | {r['rows_after']} | {r['removed_pct']:.1f} "
                         f"| {r['images_before']} | {r['images_after']} |")
    lines += ["",
              f"Test images (all tasks): {report['test_images']}. Train+val rows: {report['rows_before']} -> "
              f"{report['rows_after']} ({report['total_reduction_pct']:.1f}% fewer pooled, "
              f"{report['mean_reduction_pct']:.1f}% mean per task).",
              "", "% of row-task test images in column-task train/val (before cleaning):", ""]
    names = list(report["overlap"])
    lines.append("| test \\ train/val | " + " | ".join(names) + " |")
    lines.append("| --- |" + " ---: |" * len(names))
    for row in names:
        lines.append(f"| {row} | " + " | ".join(f"{report['overlap'][row][c]:.0f}%" for c in names) + " |")
    return "\n".join(lines)


def clean_task_data(data: dict) -> dict | None:
    """Apply the clean split in place to every task of ``data`` (name -> :class:`TaskData`) whose
    splits carry ``image_id``; tasks without it (e.g. the PolyViT world tasks) are left alone.

    Returns the :func:`clean_splits` report, or None when fewer than one task has image ids. The
    one place the clean split happens: ``data.clean: true`` in a config and ``cotrain data clean``
    both come here. Hard candidates that are test images are masked (-1), their count per split in
    ``meta["clean_split"][split]["candidates_masked"]``.
    """
    from cotrain.data.arrays import Split

    selected = {name: d for name, d in data.items() if all("image_id" in d.split(s).arrays for s in SPLITS)}
    if not selected:
        return None
    cleaned, report = clean_splits({n: {s: d.split(s).arrays["image_id"] for s in SPLITS} for n, d in selected.items()})
    test_pool = np.unique(np.concatenate([np.asarray(d.test.arrays["image_id"]).ravel() for d in selected.values()]))
    for name, d in selected.items():
        for s in CLEANED:
            if not cleaned[name][s].any():
                raise ValueError(f"task {name!r}: the clean split removes every row of its {s} split")
            kept, masked = mask_candidates(apply_keep(d.split(s).arrays, cleaned[name][s]), test_pool)
            setattr(d, s, Split(kept, d.split(s).stores))
            if masked:
                report["tasks"][name][s]["candidates_masked"] = masked
        d.meta["clean_split"] = {s: report["tasks"][name][s] for s in CLEANED}
    return report


def mask_candidates(arrays: dict, test_pool: np.ndarray) -> tuple[dict, int]:
    """``arrays`` with every hard candidate (``candidate_id`` ``[N, C]``) in ``test_pool`` set to -1
    there and in ``candidate_index``; and how many were masked (0 without candidates)."""
    if "candidate_id" not in arrays:
        return arrays, 0
    hit = np.isin(arrays["candidate_id"], test_pool) & (arrays["candidate_id"] >= 0)
    if not hit.any():
        return arrays, 0
    out = dict(arrays)
    for key in ("candidate_index", "candidate_id"):
        out[key] = np.where(hit, -1, arrays[key])
    return out, int(hit.sum())
