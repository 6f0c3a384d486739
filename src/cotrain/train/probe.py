"""Linear probes (PolyViT's representation evaluation): freeze encoders and trunk, train a new
linear head on a task's training split, report accuracy on its val and test splits.

The task may be one the model was trained on or a held-out one, as long as the model has an
encoder for its modality. Features are the class-token trunk outputs ``[N, D]``, extracted once;
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
def extract_features(model, split: Split, modality: str, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-token trunk features ``[N, D]`` and labels ``[N]`` of every example of a split."""
    if modality not in model.encoders:
        raise InputError(f"the model has no {modality} encoder (it has {sorted(model.encoders)}); cannot probe a {modality} task")
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for batch in iterate_once(split, batch_size):
        tokens, mask = model.encoders[modality](batch[modality])
        feats.append(model.trunk(tokens, mask, modality)[:, 0].float())
        labels.append(batch["label"])
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


def linear_probe(model, data: TaskData, *, epochs: int = 100, seed: int = 0, batch_size: int = 256) -> dict:
    """``{"val", "test", "chance", "modality", "n_train"}`` for a linear head on frozen features."""
    if data.multilabel:
        raise InputError(f"task {data.name!r} is multi-label; linear probes are single-label here")
    xtr, ytr = extract_features(model, data.train, data.modality, batch_size)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    with torch.enable_grad():
        head = train_linear((xtr - mean) / std, ytr, data.num_classes, epochs=epochs, seed=seed)
    out = {"modality": data.modality, "n_train": len(ytr)}
    with torch.no_grad():
        for split in ("val", "test"):
            x, y = extract_features(model, data.split(split), data.modality, batch_size)
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
    from ..data.sources import build_task_data
    from ..data.world import WORLD_TASKS

    pred = load(checkpoint)
    cfg = pred.cfg
    if data_root:
        cfg.data.root = data_root
    known = {t.name: t for t in cfg.tasks}
    if task in known:
        tcfg = known[task]
    elif task in WORLD_TASKS:
        tcfg = TaskConfig(name=task, source=SourceConfig(kind="world", name=task, n_train=1000, n_val=200, n_test=400))
    else:
        raise InputError(f"unknown task {task!r}: not in the checkpoint ({sorted(known)}) nor a world task ({sorted(WORLD_TASKS)})")
    if n_train is not None:
        tcfg = tcfg.model_copy(update={"source": tcfg.source.model_copy(update={"n_train": n_train})})
    data = build_task_data(tcfg, cfg, tokenizer=pred.tokenizer)
    return linear_probe(pred.model, data, epochs=epochs, seed=seed)
