"""Shared pieces of the vision-and-language experiments (E1, E2, E3; 12-in-1).

- :data:`VL_PRESETS`: ``small`` (2 CPU cores, each experiment ~20 min) and ``full`` (a GPU).
- :func:`vl_config` -- the experiment dict over a subset of the 12 world V&L tasks, starting from the
  embedded ``vl12.yaml`` (co-attention trunk, task tokens per dataset, Dynamic Stop-and-Go,
  round-robin, loss scaling, eta*N warm-up, clean split) with the preset's sizes and steps.
- :func:`run_vl` -- train one config (or fine-tune one task from a checkpoint) in a worker and
  return its test results, parameter count and DSG history.
- :func:`avg` -- the paper's "average": mean of each task's primary metric (VQA accuracy, R@1,
  refexp accuracy, accuracy), on a 0-100 scale in the tables.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import common

VL_TASKS = ["vqa", "vgqa", "gqa", "coco-ir", "flickr-ir", "refcoco", "refcoco+", "refcocog", "pointing", "guesswhat",
            "nlvr", "snli-ve"]
GROUPS = {"G1": ["vqa", "vgqa", "gqa"], "G2": ["coco-ir", "flickr-ir"],
          "G3": ["refcoco", "refcoco+", "refcocog", "pointing", "guesswhat"], "G4": ["nlvr", "snli-ve"]}
GROUP_OF = {t: g for g, ts in GROUPS.items() for t in ts}
REPRESENTATIVE = {"G1": "vqa", "G2": "coco-ir", "G3": "refcoco", "G4": "nlvr"}


@dataclass(frozen=True)
class VLPreset:
    name: str
    per_task_steps: int  # S: a single-task run's steps; an all-task run gets S x 12
    finetune_steps: int
    dim: int
    v_layers: int
    t_layers: int
    num_heads: int
    n_train: int
    n_val: int
    n_test: int
    n_test_retrieval: int  # retrieval pools are scored all-pairs: keep them small on a CPU
    batch_size: int
    lr: float
    max_regions: int
    max_len: int
    device: str


VL_PRESETS = {
    "small": VLPreset("small", 150, 60, 64, 1, 2, 4, 1000, 100, 200, 100, 32, 1e-3, 12, 32, "cpu"),
    "full": VLPreset("full", 3000, 1000, 256, 4, 8, 8, 10000, 500, 1000, 500, 64, 4e-4, 12, 40, "auto"),
}


def add_args(ap, runs_dir: str) -> None:
    """The options every V&L experiment script takes."""
    ap.add_argument("--preset", choices=sorted(VL_PRESETS), default="small", help="small: 2 CPU cores, ~20 min; full: a GPU")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's steps (e.g. 0.05 for a smoke test)")
    ap.add_argument("--out", default="docs/results.md", help="the Markdown file whose section this script rewrites")
    ap.add_argument("--runs-dir", default=runs_dir, help="folder for the run folders")
    ap.add_argument("--workers", type=int, default=2, help="parallel worker processes (1: run in this process)")
    ap.add_argument("--seed", type=int, default=0, help="run and data seed")
    ap.add_argument("--device", default=None, help="override the preset's device (cpu, cuda, ...)")


def vl_config(preset: str, tasks: list[str], *, steps: int | None = None, steps_scale: float = 1.0, seed: int = 0,
              out_dir: str, name: str, task_tokens: str = "dataset", dsg: bool = True, curriculum: str = "none",
              curriculum_group: str | None = None, device: str | None = None) -> dict:
    """The experiment dict of ``tasks`` (world V&L task names) under a preset."""
    from cotrain.config import default_config_path, load_raw

    p = VL_PRESETS[preset]
    raw = load_raw(default_config_path("vl12"))
    rows = {t["name"]: t for t in raw["tasks"]}
    unknown = [t for t in tasks if t not in rows]
    if unknown:
        raise ValueError(f"unknown V&L tasks {unknown}; known: {list(rows)}")
    out_rows = []
    for t in tasks:
        row = copy.deepcopy(rows[t])
        retrieval = GROUP_OF[t] == "G2"
        row["source"].update(n_train=p.n_train, n_val=min(p.n_val, p.n_test_retrieval) if retrieval else p.n_val,
                             n_test=p.n_test_retrieval if retrieval else p.n_test)
        row["batch_size"] = p.batch_size
        out_rows.append(row)
    raw["tasks"] = out_rows
    used_heads = {r.get("head") for r in out_rows}
    raw["model"]["heads"] = {k: v for k, v in raw["model"]["heads"].items() if k in used_heads}
    raw["model"].update(dim=p.dim, num_heads=p.num_heads)
    raw["model"]["coattention"].update(v_layers=p.v_layers, t_layers=p.t_layers)
    raw["model"]["task_tokens"] = task_tokens
    raw["model"]["encoders"]["regions"]["max_regions"] = p.max_regions
    raw["model"]["encoders"]["text"]["max_len"] = p.max_len
    total = common.scaled_steps(p.per_task_steps * len(tasks) if steps is None else steps, steps_scale)
    raw["schedule"]["dsg"]["enabled"] = dsg
    if curriculum != "none":
        pre = max(1, total // 4)
        raw["schedule"]["curriculum"] = {"kind": curriculum, "first_group": curriculum_group, "steps": pre}
    raw["optim"]["lr"] = p.lr
    raw["data"]["seed"] = seed
    raw["name"] = name
    raw["run"].update(
        steps=total, seed=seed, out_dir=out_dir, eval_every=total, checkpoint_every=total, keep_checkpoints=1,
        log_every=max(1, min(50, total)), device=common.resolve_device(device or p.device), progress=False,
        tensorboard=False, threads=1, eval_max_batches=None,
    )
    return raw


def grounding(trainer) -> dict:
    """12-in-1 section 5 on a trained all-task model: questions from every split of the uncleaned
    ``vqa`` data on the refexp test scenes (see :func:`cotrain.train.grounding.grounding_analysis`)."""
    from cotrain.data.sources import build_task_data, tokenize_texts
    from cotrain.train.grounding import grounding_analysis

    cfg = trainer.cfg
    vqa = tokenize_texts(build_task_data(cfg.task("vqa"), cfg), trainer.tokenizer, cfg.model.encoders.text.max_len)
    data = {**trainer.data, "vqa": vqa}
    out = grounding_analysis(trainer.model, data, question_splits=("train", "val", "test"))
    return {k: v for k, v in out.items() if isinstance(v, (int, float, str, list))}


def run_vl(raw: dict | None = None, *, finetune_from: str | None = None, task: str | None = None,
           finetune_steps: int | None = None, out_dir: str | None = None, with_grounding: bool = False) -> dict:
    """Train ``raw`` (or fine-tune ``task`` from the checkpoint ``finetune_from``); returns
    ``{"name", "results", "params", "dsg_history", "wall_s", "checkpoint", "grounding"}``."""
    from cotrain.train.finetune import finetune
    from cotrain.train.trainer import Trainer

    t0 = time.perf_counter()
    if finetune_from is not None:
        if out_dir and Path(out_dir).exists():
            shutil.rmtree(out_dir)
        trainer, results, _ = finetune(finetune_from, task, steps=finetune_steps, out_dir=out_dir,
                                       overrides=["run.progress=false", "run.tensorboard=false", "run.threads=1"])
        name = f"finetune-{task}"
    else:
        cfg = common.validate(raw)
        if Path(cfg.run.out_dir).exists():
            shutil.rmtree(cfg.run.out_dir)
        trainer = Trainer(cfg)
        results = trainer.fit()
        name = cfg.name
    return {
        "name": name,
        "results": results,
        "params": trainer.model.parameter_counts()["total"],
        "dsg_history": list(trainer.dsg.history) if trainer.dsg is not None else [],
        "steps": trainer.cfg.run.steps,
        "wall_s": round(time.perf_counter() - t0, 2),
        "checkpoint": str(trainer.last_checkpoint),
        "grounding": _safe_grounding(trainer) if with_grounding else None,
    }


def _safe_grounding(trainer) -> dict:
    try:
        return grounding(trainer)
    except Exception as err:  # the analysis must not cost the run's table
        return {"error": f"{type(err).__name__}: {err}"}


def avg(results: dict, tasks: list[str]) -> float:
    """Mean primary metric over ``tasks`` (0-100 scale)."""
    return 100.0 * sum(results[t]["value"] for t in tasks) / len(tasks)


def metric_names(results: dict, tasks: list[str]) -> dict[str, str]:
    labels = {"vqa": "VQA acc", "recall": "R@1", "refexp": "acc@IoU.5", "top1": "acc"}
    return {t: labels.get(results[t]["metric"], results[t]["metric"]) for t in tasks}


def prepare_vl_data(raws: list[dict]) -> float:
    """Generate the world V&L data every run reads, once, here (workers then only load it)."""
    from cotrain.data.sources import build_all_task_data

    t0 = time.perf_counter()
    seen = set()
    for raw in raws:
        key = repr([t["source"] for t in raw["tasks"]]) + repr(raw["model"]["encoders"]) + repr(raw["data"])
        if key in seen:
            continue
        seen.add(key)
        build_all_task_data(common.validate(raw))
    return time.perf_counter() - t0
