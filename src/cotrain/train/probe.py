"""Linear probes (PolyViT's representation evaluation): freeze encoders and trunk, train a new
linear head on a task's training split, report accuracy on its val and test splits.

The task may be one the model was trained on (its task token is used) or a held-out one, as long as
the model has an encoder for each of its inputs. Features are the pooled trunk outputs ``[N, D]``
(the class token; ``h_IMG ⊙ h_CLS`` for an image–text task), extracted once;
the head is trained full-batch with AdamW on standardised features (a convex problem, so the result
barely depends on the optimiser settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.arrays import Split, TaskData, iterate_once
from ..errors import InputError
from ..metrics.classification import chance_level, top1


@torch.no_grad()
def extract_features(model, split: Split, inputs: tuple[str, ...], task: str | None = None,
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled trunk features ``[N, D]`` (:meth:`cotrain.model.Model.run_trunk`, ``joint()``) and labels
    ``[N]`` of every example of a split; ``task``: use that task's token (one of the model's tasks)."""
    missing = [k for k in inputs if k not in model.encoders]
    if missing:
        raise InputError(f"the model has no encoder for {missing} (it has {sorted(model.encoders)}); "
                         f"cannot probe a task reading {list(inputs)}")
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for batch in iterate_once(split, batch_size):
            feats.append(model.run_trunk(batch, inputs, task).joint().float())
            labels.append(batch["label"])
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def train_linear(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, epochs: int = 100, lr: float = 0.05,
    weight_decay: float = 1e-4, seed: int = 0,
) -> torch.nn.Linear:
    """Full-batch softmax regression on (already standardised) features ``x [N, D]``."""
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(head(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return head


def linear_probe(model, data: TaskData, inputs: tuple[str, ...], *, task: str | None = None, epochs: int = 100,
                 seed: int = 0, batch_size: int = 256) -> dict:
    """``{"val", "test", "chance", "inputs", "n_train"}`` for a linear head on frozen features."""
    if data.multilabel:
        raise InputError(f"task {data.name!r} is multi-label; linear probes are single-label here")
    xtr, ytr = extract_features(model, data.train, inputs, task, batch_size)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    with torch.enable_grad():
        head = train_linear((xtr - mean) / std, ytr, data.num_classes, epochs=epochs, seed=seed)
    out = {"inputs": "+".join(inputs), "n_train": len(ytr)}
    with torch.no_grad():
        for split in ("val", "test"):
            x, y = extract_features(model, data.split(split), inputs, task, batch_size)
            out[split] = top1(head((x - mean) / std), y)
    out["chance"] = float(chance_level(data.train.arrays["label"], np.asarray(data.test.arrays["label"])))
    return out


def probe_checkpoint(
    checkpoint: str | Path, task: str, *, epochs: int = 100, n_train: int | None = None, seed: int = 0,
    data_root: str | None = None,
) -> dict:
    """Probe a saved model on ``task``: one of its own tasks, or any world task (held out)."""
    from ..api import load
    from ..config import SourceConfig, TaskConfig
    from ..data.world import world_task_names
    from ..tasks import task_inputs

    pred = load(checkpoint)
    cfg = pred.cfg
    if data_root:
        cfg.data.root = data_root
    known = {t.name: t for t in cfg.tasks}
    if task in known:
        tcfg = known[task]
    elif task in world_task_names():
        tcfg = TaskConfig(name=task, source=SourceConfig(kind="world", name=task, n_train=1000, n_val=200, n_test=400))
    else:
        raise InputError(f"unknown task {task!r}: not in the checkpoint ({sorted(known)}) nor a world task "
                         f"({world_task_names()})")
    if n_train is not None:
        tcfg = tcfg.model_copy(update={"source": tcfg.source.model_copy(update={"n_train": n_train})})
    from ..data.sources import build_all_task_data

    probe_cfg = cfg.model_copy(update={"tasks": [tcfg], "data": cfg.data.model_copy(update={"clean": False})})
    data = build_all_task_data(probe_cfg, vocab_file=pred.checkpoint / "vocab.txt" if pred.tokenizer else None)[0][task]
    inputs = task_inputs(tcfg)
    return linear_probe(pred.model, data, inputs, task=task if task in known else None, epochs=epochs, seed=seed)
