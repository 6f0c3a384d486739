"""Encoder learning-rate multipliers (``model.encoders.image.lr_mult``, ``.text.lr_mult``): their own
parameter groups, composed with the schedule and the per-task ``lr_mult``, and exact resume."""

from __future__ import annotations

import pytest
import torch

from synthetic import tiny_cfg, tiny_data
from cotrain.train.lr import lr_factor
from cotrain.train.trainer import Trainer, build_optimizer, encoder_lr_mults

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE = {"encoders": {"image": {"image_size": 16, "patch_size": 8, "lr_mult": 0.1}}}




def _cfg(tmp_path, **sections):
    cfg = tiny_cfg(tmp_path, model=IMAGE, schedule={"kind": "alternating"}, **sections)
    tasks = [t.model_copy(update={"lr_mult": 2.0 if t.name == "aud" else 1.0}) for t in cfg.tasks]
    return cfg.model_copy(update={"tasks": tasks})


def test_groups_hold_the_encoder_parameters(tmp_path):
    cfg = _cfg(tmp_path)
    tr = Trainer(cfg, data=tiny_data())
    assert encoder_lr_mults(tr.model, cfg) == {"image": 0.1}
    groups = tr.optimizer.param_groups
    assert [g["lr_mult"] for g in groups] == [1.0, 1.0, 0.1, 0.1]
    assert [g["weight_decay"] for g in groups] == [cfg.optim.weight_decay, 0.0] * 2
    image = {id(p) for p in tr.model.encoders["image"].parameters()}
    low = {id(p) for g in groups[2:] for p in g["params"]}
    assert low == image and not image & {id(p) for g in groups[:2] for p in g["params"]}
    # no multiplier: the two groups of old
    plain = tiny_cfg(tmp_path / "plain")
    assert [g["lr_mult"] for g in build_optimizer(Trainer(plain, data=tiny_data()).model, plain).param_groups] == [1.0, 1.0]


def test_group_lr_after_steps_composes_schedule_task_and_encoder(tmp_path):
    cfg = _cfg(tmp_path, optim={"lr": 1e-3, "warmup_steps": 3, "decay": "cosine", "weight_decay": 0.0})
    tr = Trainer(cfg, data=tiny_data())
    o = cfg.optim
    for step in range(6):
        task = tr.schedule.tasks_at(step)[0]
        tr.train_step()
        base = o.lr * lr_factor(step, total_steps=cfg.run.steps, warmup_steps=3, decay=o.decay, min_ratio=o.min_lr_ratio)
        want = base * {"img": 1.0, "aud": 2.0}[task]
        assert [g["lr"] for g in tr.optimizer.param_groups] == pytest.approx([want, want, want * 0.1, want * 0.1])


def test_first_adamw_step_moves_encoder_weights_by_the_lower_lr(tmp_path):
    """AdamW's first update is lr · g / (|g| + eps) ≈ ±lr per weight (no weight decay): the image
    encoder's weights move by 0.1 · lr, the trunk's by lr."""
    cfg = _cfg(tmp_path, optim={"lr": 1e-3, "warmup_steps": 0, "decay": "constant", "weight_decay": 0.0})
    tr = Trainer(cfg, data=tiny_data())
    assert tr.schedule.tasks_at(0) == ["img"]
    before = {k: v.detach().clone() for k, v in tr.model.named_parameters()}
    tr.train_step()
    after = dict(tr.model.named_parameters())
    moved = {k: (after[k].detach() - before[k]).abs().max().item() for k in before}
    enc = [v for k, v in moved.items() if k.startswith("encoders.image.")]
    trunk = [v for k, v in moved.items() if k.startswith("trunk.") and v > 0]
    assert enc and trunk
    assert max(enc) == pytest.approx(1e-4, rel=1e-3)
    assert max(trunk) == pytest.approx(1e-3, rel=1e-3)


def test_exact_resume_with_encoder_multiplier(tmp_path):
    data = tiny_data()
    full_cfg = _cfg(tmp_path / "a", run={"steps": 12})
    full = Trainer(full_cfg, data=data)
    full.fit()
    part_cfg = _cfg(tmp_path / "b", run={"steps": 12, "checkpoint_every": 6})
    Trainer(part_cfg, data=data).fit(stop_at=6)
    resumed = Trainer(part_cfg, data=data, resume=part_cfg.run.out_dir)
    assert resumed.step == 6 and resumed.group_lr_mults == [1.0, 1.0, 0.1, 0.1]
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [g["lr"] for g in full.optimizer.param_groups] == [g["lr"] for g in resumed.optimizer.param_groups]
