"""Multi-task → single-task fine-tuning (12-in-1 section 4: "all-task → single-task").

:func:`finetune` starts a one-task run from a multi-task checkpoint: the checkpoint's config with
only ``task`` (and only the head it uses), its vocabulary, and every weight of the multi-task model
that the one-task model has (encoders, trunk, the task's head, and the task's own task-token row,
which moves to row 0 of the one-task embedding). Optimizer, schedule, Dynamic Stop-and-Go and the
curriculum start afresh; the run length is ``steps`` (default: the task's ``steps``, else
``run.steps`` divided by the number of tasks of the multi-task run).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import apply_override, config_from_dict
from ..errors import InputError


def transfer_weights(target: torch.nn.Module, source: torch.nn.Module, task: str) -> dict[str, int]:
    """Copy every parameter / buffer of ``source`` with the same name and shape into ``target``;
    task-token embeddings (``task_tokens.embed``, or per input kind ``task_tokens.<kind>.embed``)
    copy the row of ``task``. Returns counts of copied / skipped tensors."""
    src_state = source.state_dict()
    new_state = target.state_dict()
    copied, skipped = 0, []
    for name, value in new_state.items():
        if "task_tokens" in name.split(".") and name.endswith(".embed.weight") and name in src_state:
            old_id, new_id = source.task_token_id(task), target.task_token_id(task)
            if old_id is not None and new_id is not None:
                value[new_id] = src_state[name][old_id]
                copied += 1
                continue
        if name in src_state and src_state[name].shape == value.shape:
            value.copy_(src_state[name])
            copied += 1
        else:
            skipped.append(name)
    target.load_state_dict(new_state)
    return {"copied": copied, "skipped": len(skipped), "skipped_names": skipped}


def single_task_config(cfg, task: str, *, steps: int | None = None, out_dir: str | None = None,
                       overrides: list[str] | tuple[str, ...] = ()):
    """The one-task version of a multi-task experiment config."""
    if task not in [t.name for t in cfg.tasks]:
        raise InputError(f"unknown task {task!r}; the checkpoint's tasks: {[t.name for t in cfg.tasks]}")
    row = cfg.task(task)
    raw = cfg.model_dump(mode="json")
    raw["tasks"] = [row.model_dump(mode="json")]
    raw["model"]["heads"] = {k: v for k, v in raw["model"]["heads"].items() if k == row.head_key}
    raw["schedule"]["dsg"]["enabled"] = False
    raw["schedule"]["curriculum"] = {"kind": "none", "first_group": None, "steps": 0}
    raw["schedule"]["kind"] = "alternating"
    n = steps or row.steps or max(1, cfg.run.steps // len(cfg.tasks))
    raw["run"].update(steps=n, checkpoint_every=n, eval_every=min(raw["run"]["eval_every"], n))
    raw["run"]["out_dir"] = out_dir or str(Path(cfg.run.out_dir).with_name(Path(cfg.run.out_dir).name + f"-ft-{task}"))
    for o in overrides:
        apply_override(raw, o)
    return config_from_dict(raw, origin=f"fine-tuning config of {task!r}")


def finetune(checkpoint: str | Path, task: str, *, steps: int | None = None, out_dir: str | None = None,
             overrides: list[str] | tuple[str, ...] = (), data_root: str | None = None, data=None):
    """Fine-tune ``task`` alone from a multi-task checkpoint. Returns ``(trainer, results, transfer)``
    (test results as :meth:`Trainer.fit` gives them; ``transfer`` from :func:`transfer_weights`).
    ``data``: the task's :class:`TaskData` already loaded (else built from the config)."""
    from ..api import load
    from ..data.sources import build_all_task_data
    from .trainer import Trainer

    pred = load(checkpoint)
    cfg = single_task_config(pred.cfg, task, steps=steps, out_dir=out_dir, overrides=overrides)
    if data_root:
        cfg.data.root = data_root
    tokenizer = pred.tokenizer
    if data is None:
        vocab = pred.checkpoint / "vocab.txt" if tokenizer is not None else None
        data, tokenizer = build_all_task_data(cfg, progress=cfg.run.progress, vocab_file=vocab)
    trainer = Trainer(cfg, data=data, tokenizer=tokenizer)
    transfer = transfer_weights(trainer.model, pred.model, task)
    results = trainer.fit()
    return trainer, results, transfer
