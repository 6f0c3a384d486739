"""``cotrain info``: a config's tasks, its model's parameter counts (L_adapt = 0 and L/2), the environment.

Class counts come from the sources' metadata (world class lists, class folders, TSV labels), so no
data is generated or decoded.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

from .config import VL_FORMAT_KINDS, ExperimentConfig
from .data.sources import task_modality
from .model import TaskSpec, build_model


def num_classes_of(task, cfg: ExperimentConfig) -> int | None:
    """The task's number of classes, or None when only the data can tell (a real VQA source's
    answer vocabulary is built from its annotations when the data is read)."""
    src = task.source
    if src.kind == "world":
        from .data.world import CLASS_NAMES
        from .data.world.text import TEXT_TASKS, text_class_names
        from .data.world.vl.build import VL_TASKS, vl_class_names

        if src.name in TEXT_TASKS:
            return len(text_class_names(src.name))
        return len(vl_class_names(src.name)) if src.name in VL_TASKS else len(CLASS_NAMES[src.name])
    if src.kind in VL_FORMAT_KINDS:
        from .data.formats.vl.source import HEAD_TYPES

        return {"vqa": None, "nlvr": 2, "snli-ve": 3}.get(HEAD_TYPES[src.kind], 1)
    path = Path(src.path)
    if src.kind == "text_tsv":
        from .data.formats.text_tsv import read_tsv_rows

        return len({r.label for r in read_tsv_rows(path)})
    root = path / "train" if (path / "train").is_dir() else path
    return len([p for p in root.iterdir() if p.is_dir()])


def text_vocab(cfg: ExperimentConfig) -> tuple[int, str]:
    """The text encoder's vocabulary size and where it comes from (a vocab file / checkpoint folder,
    or ``vocab_size`` word pieces learnt from the training texts)."""
    tcfg = cfg.model.encoders.text
    if tcfg.vocab is None:
        return tcfg.vocab_size, f"up to {tcfg.vocab_size} word pieces learnt from the training texts"
    from .data.tokenizer import build_tokenizer

    tok = build_tokenizer(tcfg)
    return tok.vocab_size, f"{tok.vocab_size} word pieces from {tcfg.vocab}"


def _source_label(task) -> str:
    src = task.source
    if src.kind == "world":
        return f"world:{src.name}"
    if src.path:
        return f"{src.kind}:{src.path}"
    first = next((f for files in src.files.values() for f in files.values()), "")
    return f"{src.kind}:{first}" + (" ..." if sum(len(f) for f in src.files.values()) > 1 else "")


def _vl_fields(task) -> dict:
    src = task.source
    if src.kind == "world":
        from .data.world.vl.build import VL_TASKS
        from .data.world.vl.regions import REGION_DIM

        info = VL_TASKS[src.name]
        return {"head_type": info.head_type, "region_dim": REGION_DIM, "group": task.group or info.group}
    from .data.formats.vl.source import HEAD_TYPES

    return {"head_type": HEAD_TYPES[src.kind], "region_dim": 2048, "group": task.group}  # bottom-up features


def light_specs(cfg: ExperimentConfig) -> list[TaskSpec]:
    specs = []
    for t in cfg.tasks:
        modality = task_modality(t)
        extra = _vl_fields(t) if modality == "vl" else {}
        n = num_classes_of(t, cfg)
        specs.append(TaskSpec(t.name, modality, t.head_key, 1 if n is None else n, loss_weight=t.loss_weight, **extra))
    return specs


def describe_vl(cfg: ExperimentConfig, specs: list[TaskSpec]) -> list[str]:
    """Model lines of a vision-and-language config: its parameter counts and those of single-task models."""
    m, vocab = cfg.model, text_vocab(cfg)[0]
    out = [f"model: {m.trunk} trunk, dim {m.dim}, {m.vl.v_layers} visual / {m.vl.t_layers} text layers, {m.num_heads} heads, "
           f"task tokens {m.vl.task_tokens}, visual input {m.vl.visual}"]
    c = build_model(m, specs, vocab_size=vocab).parameter_counts()
    out.append(f"  {'encoders':>10s} {'trunk':>10s} {'task tok.':>10s} {'heads':>10s} {'total':>11s}")
    out.append(f"  {c['encoders']:10,d} {c['trunk']:10,d} {c['task_tokens']:10,d} {c['heads']:10,d} {c['total']:11,d}")
    heads = {s.head for s in specs}
    n_single = sum(
        build_model(m.model_copy(update={"heads": {k: v for k, v in m.heads.items() if k == s.head}}), [s],
                    vocab_size=vocab).parameter_counts()["total"] for s in specs)
    out.append(f"  {len(specs)} single-task models of the same size: {n_single:,d} parameters in all ({len(heads)} shared heads here)")
    return out


def parameter_table(cfg: ExperimentConfig, specs: list[TaskSpec] | None = None, vocab_size: int | None = None) -> list[dict]:
    """Parameter counts of the config's model at ``l_adapt`` = 0 and depth // 2."""
    specs = specs or light_specs(cfg)
    if any(s.modality == "text" for s in specs) and vocab_size is None:
        vocab_size = text_vocab(cfg)[0]
    rows = []
    for l_adapt in sorted({0, cfg.model.depth // 2}):
        mcfg = cfg.model.model_copy(update={"l_adapt": l_adapt})
        counts = build_model(mcfg, specs, vocab_size=vocab_size).parameter_counts()
        rows.append({"l_adapt": l_adapt, **counts})
    return rows


def describe(cfg: ExperimentConfig) -> str:
    import torch

    specs = light_specs(cfg)
    classes = {t.name: num_classes_of(t, cfg) for t in cfg.tasks}
    m = cfg.model
    out = [f"experiment: {cfg.name}", "", "tasks:"]
    out.append(f"  {'task':16s} {'modality':8s} {'head':16s} {'classes':>7s} {'batch':>5s} {'lr_mult':>7s}  source")
    for t, s in zip(cfg.tasks, specs):
        n = "data" if classes[t.name] is None else str(classes[t.name])
        out.append(
            f"  {t.name:16s} {s.modality:8s} {s.head:16s} {n:>7s} {t.batch_size:5d} {t.lr_mult:7.2f}  {_source_label(t)}"
        )
    from_data = [n for n, c in classes.items() if c is None]
    if from_data:
        out.append(f"  classes 'data': the answer vocabulary of {from_data} is built from the annotations when the data "
                   "is read (source.answer_min_count / answer_top_k); the parameter counts below give those heads 1 answer")
    vocab = None
    if any(s.modality in ("text", "vl") for s in specs):
        vocab, where = text_vocab(cfg)
        out.append(f"  text vocabulary: {where}")
    if m.trunk != "shared":
        return "\n".join([*out, "", *describe_vl(cfg, specs), "", *_footer(cfg, torch)])
    out += ["", f"model: shared trunk, dim {m.dim}, depth {m.depth}, {m.num_heads} heads, mlp x{m.mlp_ratio}"]
    out.append(f"  {'L_adapt':>7s} {'encoders':>10s} {'shared':>10s} {'adapters':>10s} {'heads':>10s} {'total':>11s}")
    for r in parameter_table(cfg, specs, vocab):
        out.append(
            f"  {r['l_adapt']:7d} {r['encoders']:10,d} {r['trunk_shared']:10,d} {r['trunk_adapt']:10,d} {r['heads']:10,d} {r['total']:11,d}"
        )
    base = m.model_copy(update={"l_adapt": 0})
    n_single = sum(build_model(base, [s], vocab_size=vocab).parameter_counts()["total"] for s in specs)
    out.append(f"  {len(specs)} single-task models of the same size: {n_single:,d} parameters in all")
    return "\n".join([*out, "", *_footer(cfg, torch)])


def _footer(cfg: ExperimentConfig, torch) -> list[str]:
    dsg = ", Dynamic Stop-and-Go" if cfg.schedule.dsg.enabled else ""
    return [
        f"schedule: {cfg.schedule.kind}{dsg}; {cfg.run.steps} steps; optimizer AdamW lr {cfg.optim.lr}",
        f"environment: python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, cuda {'yes' if torch.cuda.is_available() else 'no'}, "
        f"espeak-ng {'yes' if shutil.which('espeak-ng') else 'no (spoken-digits unavailable)'}",
    ]
