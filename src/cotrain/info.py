"""``cotrain info``: a config's task table, its one model's parameter counts, the environment.

Everything comes from the config and the sources' metadata (world class lists, class folders, TSV
labels), so no data is generated or decoded. A real VQA source's answer vocabulary (a COCO
detection source's categories) is only known once its annotations are read: its class count shows
as ``data`` and its head is counted at one class (said below the table).
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

from .config import VL_FORMAT_KINDS, ExperimentConfig
from .model import build_model
from .tasks import TaskSpec, make_spec, task_inputs

NOMINAL_REGION_DIM = 2048  # bottom-up-attention features, when a real source's size is not configured


def num_classes_of(task, cfg: ExperimentConfig) -> int | None:
    """The task's number of classes, or None when only the data can tell (a real VQA source's
    answer vocabulary is built from its annotations when the data is read; a COCO detection
    source's categories are those of its instances file)."""
    src = task.source
    if src.kind == "world":
        from .data.world import world_class_names

        return len(world_class_names(src.name))
    if src.kind in VL_FORMAT_KINDS:
        from .data.formats.vl.source import data_head_type

        return {"vqa": None, "nlvr": 2, "snli-ve": 3}.get(data_head_type(task, cfg), 1)
    if src.kind == "coco_detection":
        return None  # the categories of the instances file
    if src.kind == "glue":
        from .data.formats.glue import glue_class_names

        return len(glue_class_names(src.glue_task))
    path = Path(src.path)
    if src.kind == "text_tsv":
        from .data.formats.text_tsv import read_tsv_rows

        return len({r.label for r in read_tsv_rows(path)})
    root = path / "train" if (path / "train").is_dir() else path
    return len([p for p in root.iterdir() if p.is_dir()])


def _data_head(task, cfg: ExperimentConfig) -> tuple[str | None, int | None, str | None]:
    """The head kind a task's data implies, its region feature size and group (config only)."""
    src = task.source
    if src.kind == "world":
        from .data.world import world_task_info

        return world_task_info(src.name)
    if src.kind in VL_FORMAT_KINDS:
        from .data.formats.vl.source import data_head_type

        return data_head_type(task, cfg), cfg.model.encoders.regions.feature_dim or NOMINAL_REGION_DIM, None
    if src.kind == "coco_detection":
        from .data.formats.coco_detection import HEAD_TYPE

        return HEAD_TYPE, None, None
    return None, None, None


def text_vocab(cfg: ExperimentConfig) -> tuple[int, str]:
    """The text encoder's vocabulary size and where it comes from (a vocab file / checkpoint folder,
    or ``vocab_size`` word pieces learnt from the training texts)."""
    tcfg = cfg.model.encoders.text
    if tcfg.vocab is None and tcfg.pretrained is None:
        return tcfg.vocab_size, f"up to {tcfg.vocab_size} word pieces learnt from the training texts"
    from .data.tokenizer import build_tokenizer

    tok = build_tokenizer(tcfg)
    return tok.vocab_size, f"{tok.vocab_size} word pieces from {tcfg.vocab or tcfg.pretrained}"


def light_specs(cfg: ExperimentConfig) -> list[TaskSpec]:
    """The task table from the config alone (classes from source metadata; 1 where only data can tell)."""
    specs = []
    for t in cfg.tasks:
        n = num_classes_of(t, cfg)
        head, region_dim, group = _data_head(t, cfg)
        specs.append(make_spec(t, cfg, num_classes=1 if n is None else n, data_head=head,
                               region_dim=region_dim, group=group))
    return specs


def _source_label(task) -> str:
    src = task.source
    if src.kind == "world":
        return f"world:{src.name}"
    if src.path:
        return f"{src.kind}:{src.path}"
    first = next((f for files in src.files.values() for f in files.values()), "")
    return f"{src.kind}:{first}" + (" ..." if sum(len(f) for f in src.files.values()) > 1 else "")


def parameter_table(cfg: ExperimentConfig, specs: list[TaskSpec] | None = None, vocab_size: int | None = None) -> list[dict]:
    """Parameter counts of the config's model; for the shared trunk at ``l_adapt`` = 0 and depth // 2."""
    specs = specs or light_specs(cfg)
    if vocab_size is None and any("text" in s.inputs for s in specs):
        vocab_size = text_vocab(cfg)[0]
    m = cfg.model
    settings = sorted({0, m.depth // 2}) if m.trunk == "shared" else [m.l_adapt]
    return [{"l_adapt": la, **build_model(m.model_copy(update={"l_adapt": la}), specs, vocab_size).parameter_counts()}
            for la in settings]


def _trunk_line(cfg: ExperimentConfig) -> str:
    m = cfg.model
    e = m.encoder_decoder
    shape = (f"{m.coattention.v_layers} visual / {m.coattention.t_layers} text layers" if m.trunk == "coattention"
             else f"encoder layers {e.encoder_layers}, {e.decoder_layers} decoder layers "
                  f"({'shared' if e.shared_decoder else 'one per task'}), {e.queries} queries unless a task sets its own"
             if m.trunk == "encoder_decoder" else f"depth {m.depth}")
    return (f"model: {m.trunk} trunk, dim {m.dim}, {shape}, {m.num_heads} heads, mlp x{m.mlp_ratio}, "
            f"task tokens {m.task_tokens}")


def describe(cfg: ExperimentConfig) -> str:
    import torch

    specs = light_specs(cfg)
    classes = {t.name: num_classes_of(t, cfg) for t in cfg.tasks}
    out = [f"experiment: {cfg.name}", "", "tasks:"]
    out.append(f"  {'task':16s} {'inputs':16s} {'head':22s} {'classes':>7s} {'batch':>5s} {'lr_mult':>7s}  source")
    for t, s in zip(cfg.tasks, specs):
        n = "data" if classes[t.name] is None else str(classes[t.name])
        head = f"{s.head} ({s.head_kind})" if s.head != s.head_kind else s.head
        out.append(f"  {t.name:16s} {'+'.join(s.inputs):16s} {head:22s} {n:>7s} {t.batch_size:5d} {t.lr_mult:7.2f}  "
                   f"{_source_label(t)}")
    from_data = [n for n, c in classes.items() if c is None]
    if from_data:
        out.append(f"  classes 'data': the classes of {from_data} are built from the annotations when the data is read "
                   "(VQA: the answer vocabulary, source.answer_min_count / answer_top_k; COCO detection: the "
                   "categories); the parameter counts below give those heads 1 class")
    vocab = None
    if any("text" in s.inputs for s in specs):
        vocab, where = text_vocab(cfg)
        out.append(f"  text vocabulary: {where}")
    out += ["", _trunk_line(cfg)]
    out.append(f"  {'L_adapt':>7s} {'encoders':>10s} {'trunk':>10s} {'adapters':>10s} {'task tok.':>10s} "
               f"{'heads':>10s} {'total':>11s}")
    for r in parameter_table(cfg, specs, vocab):
        trunk = r["trunk"] + r["decoder"] + r["queries"]
        out.append(f"  {r['l_adapt']:7d} {r['encoders']:10,d} {trunk:10,d} {r['trunk_adapt']:10,d} "
                   f"{r['task_tokens']:10,d} {r['heads']:10,d} {r['total']:11,d}")
        if r["decoder"] or r["queries"]:
            out.append(f"  {'':7s} of the trunk: decoder{'' if cfg.model.encoder_decoder.shared_decoder else 's'} "
                       f"{r['decoder']:,d}, queries {r['queries']:,d}")
    single = cfg.model.model_copy(update={"l_adapt": 0} if cfg.model.trunk == "shared" else {})
    n_single = sum(
        build_model(single.model_copy(update={"heads": {k: v for k, v in single.heads.items() if k == s.head}}), [s],
                    vocab if "text" in s.inputs else None).parameter_counts()["total"] for s in specs)
    heads = len({s.head for s in specs})
    out.append(f"  {len(specs)} single-task models of the same size: {n_single:,d} parameters in all "
               f"({heads} heads in the one model)")
    return "\n".join([*out, "", *_footer(cfg, torch)])


def _footer(cfg: ExperimentConfig, torch) -> list[str]:
    dsg = ", Dynamic Stop-and-Go" if cfg.schedule.dsg.enabled else ""
    return [
        f"schedule: {cfg.schedule.kind}{dsg}; {cfg.run.steps} steps; optimizer AdamW lr {cfg.optim.lr}",
        f"environment: python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, cuda {'yes' if torch.cuda.is_available() else 'no'}, "
        f"espeak-ng {'yes' if shutil.which('espeak-ng') else 'no (spoken-digits unavailable)'}",
    ]


__all__ = ["describe", "light_specs", "num_classes_of", "parameter_table", "task_inputs", "text_vocab"]
