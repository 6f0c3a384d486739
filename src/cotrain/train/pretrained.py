"""Pretrained → downstream: a pretraining checkpoint's encoders and trunk loaded into the model a
downstream config builds, with new heads (CVLP / ViLBERT pretraining, then fine-tuning).

:func:`load_pretrained` sorts every tensor into one of three lists and returns them as a report:

- **loaded** — the encoders and the trunk: same name, same shape in the checkpoint and the model;
- **new** — what the model has and the pretraining did not train: its heads, its task tokens (the
  tasks are other tasks), an encoder of an input kind the checkpoint has no encoder for;
- **ignored** — what the checkpoint has and the downstream model does not use: the pretraining
  heads (MLM / ITM / MRM predictors, the contrastive projection), its task tokens, encoders of
  input kinds no downstream task reads, and the trainer state beside the weights (the key network's
  EMA weights and the queue of negatives in ``optimizer.safetensors``; the optimizer moments).

A trunk or a shared encoder that does not match — a tensor of another shape, or a layer one side has
and the other lacks — is a :class:`~cotrain.train.checkpoint.CheckpointError` listing each
mismatching name with both shapes: the downstream config must describe the pretrained trunk.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CheckpointError

MAX_LISTED = 8


def _fresh(name: str) -> bool:
    """Parameters that belong to the tasks, not to the pretrained representation: task tokens and
    type embeddings of input-kind pairs (which depend on the task table)."""
    parts = name.split(".")
    return "task_tokens" in parts or "types" in parts


def _encoder_kind(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "encoders" and len(parts) > 1 else None


def load_pretrained(model: torch.nn.Module, tensors: dict[str, torch.Tensor], file: str | Path,
                    extra: dict[str, torch.Tensor] | None = None) -> dict[str, list[str]]:
    """Copy the encoders and trunk of ``tensors`` (a checkpoint's ``model.safetensors``, read from
    ``file``) into ``model``; ``extra``: the checkpoint's ``optimizer.safetensors`` tensors (reported
    as ignored). Returns ``{"loaded": [...], "new": [...], "ignored": [...]}`` (tensor names)."""
    own = model.state_dict()
    ck_kinds = {k for n in tensors if (k := _encoder_kind(n))}
    own_kinds = {k for n in own if (k := _encoder_kind(n))}
    loaded, new, ignored, problems, mismatched = [], [], [], [], set()
    for name, value in own.items():
        kind = _encoder_kind(name)
        transferable = (name.startswith("trunk.") or (kind is not None and kind in ck_kinds)) and not _fresh(name)
        if not transferable:
            new.append(name)
        elif name not in tensors:
            problems.append(f"{name} {list(value.shape)} is in the model but not in the checkpoint")
        elif tensors[name].shape != value.shape:
            mismatched.add(name)
            problems.append(f"{name} has shape {list(tensors[name].shape)} in the checkpoint but {list(value.shape)} "
                            "in the model")
        else:
            loaded.append(name)
    for name, value in tensors.items():
        if name in own:
            if name not in mismatched and name not in loaded:  # the downstream model's own (new) tensor
                ignored.append(name)
            continue
        kind = _encoder_kind(name)
        if not _fresh(name) and (name.startswith("trunk.") or kind in own_kinds):
            problems.append(f"{name} {list(value.shape)} is in the checkpoint but not in the model")
        else:
            ignored.append(name)
    if problems:
        more = len(problems) - MAX_LISTED
        listed = "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        raise CheckpointError(f"{file}: the downstream config's trunk / encoders do not match the pretrained ones "
                              f"(set its model section like the pretraining run's): {listed}")
    state = dict(own)
    state.update({n: tensors[n] for n in loaded})
    model.load_state_dict(state)
    ignored += sorted(f"optimizer.safetensors:{k}" for k in (extra or {}) if k.startswith("hook."))
    return {"loaded": loaded, "new": new, "ignored": ignored}


def _group(names: list[str]) -> str:
    """``encoders.text (5), trunk (40)``: names counted by their first two parts."""
    counts: dict[str, int] = {}
    for n in names:
        head = n.split(":", 1)[-1]
        parts = head.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("encoders", "heads", "hook") else parts[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())) or "nothing"


def format_report(report: dict[str, list[str]]) -> str:
    """Three lines: what was loaded, what is new, what was ignored (tensor counts per module)."""
    return "\n".join(f"  {what:8s} {len(report[what]):4d} tensors: {_group(report[what])}"
                     for what in ("loaded", "new", "ignored"))


def finetune_from_config(checkpoint: str | Path, config: str | Path, *, overrides: list[str] | tuple[str, ...] = (),
                         out_dir: str | None = None, data_root: str | None = None, data=None, quiet: bool = False):
    """Train the downstream experiment ``config`` (a YAML file, or the name of an embedded config)
    starting from the encoders and trunk of the pretraining ``checkpoint`` (a checkpoint or run
    folder). Text is tokenised with the checkpoint's vocabulary. Returns ``(trainer, results,
    report)``; the report is also written to ``<out_dir>/pretrained.json``."""
    import json

    from ..config import ConfigError, default_config_path, load_config
    from ..data.sources import build_all_task_data
    from .checkpoint import load_checkpoint
    from .trainer import Trainer

    ck = load_checkpoint(checkpoint)
    path = Path(config)
    if not path.is_file():
        try:
            path = default_config_path(str(config))
        except ConfigError:
            raise ConfigError(f"no config file {config} (and no embedded config of that name)") from None
    cfg = load_config(path, list(overrides))
    if out_dir:
        cfg.run.out_dir = out_dir
    if data_root:
        cfg.data.root = data_root
    if quiet:
        cfg.run.progress = False
    vocab = ck["dir"] / "vocab.txt"
    tokenizer = None
    if data is None:
        data, tokenizer = build_all_task_data(cfg, progress=cfg.run.progress, vocab_file=vocab if vocab.is_file() else None)
    elif vocab.is_file():
        from ..data.tokenizer import build_tokenizer

        tokenizer = build_tokenizer(cfg.model.encoders.text.model_copy(update={"vocab": str(vocab)}))
    trainer = Trainer(cfg, data=data, tokenizer=tokenizer)
    report = load_pretrained(trainer.model, ck["model"], ck["dir"] / "model.safetensors", ck["extra"])
    out = Path(cfg.run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretrained.json").write_text(json.dumps({"checkpoint": str(ck["dir"]), **report}, indent=1))
    results = trainer.fit()
    return trainer, results, report


__all__ = ["finetune_from_config", "format_report", "load_pretrained"]
