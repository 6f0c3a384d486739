"""The training loop: exact resume, update semantics, per-task LR, NaN handling, logs."""

from __future__ import annotations

import json

import pytest
import torch

from synthetic import tiny_cfg, tiny_data
from cotrain.train.checkpoint import load_checkpoint
from cotrain.train.logging import read_log
from cotrain.train.trainer import Trainer, TrainingDiverged


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_exact_resume_equals_uninterrupted(tmp_path):
    """Stop at step 13, resume in a new Trainer, finish: same task sequence and bit-identical weights.
    Dropout and drop-path are on, so the torch RNG state must be restored too."""
    model = {"dropout": 0.1, "drop_path": 0.2}
    data = tiny_data(("img", "vid", "aud"))
    full_cfg = tiny_cfg(tmp_path / "a", tasks=("img", "vid", "aud"), model=model)
    full = Trainer(full_cfg, data=data)
    full.fit()

    part_cfg = tiny_cfg(tmp_path / "b", tasks=("img", "vid", "aud"), model=model, run={"checkpoint_every": 13})
    first = Trainer(part_cfg, data=data)
    first.fit(stop_at=13)
    assert first.step == 13
    resumed = Trainer(part_cfg, data=data, resume=part_cfg.run.out_dir)
    assert resumed.step == 13
    resumed.fit()

    assert resumed.task_steps == full.task_steps
    a, b = weights(full.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the optimizer moments too
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_resume_without_rng_restore_would_differ(tmp_path, monkeypatch):
    """Guard for the test above: with drop-path on, a different RNG stream gives different weights."""
    model = {"drop_path": 0.3}
    data = tiny_data()
    cfg = tiny_cfg(tmp_path / "a", model=model, run={"steps": 12})
    t1 = Trainer(cfg, data=data)
    t1.fit()
    cfg2 = tiny_cfg(tmp_path / "b", model=model, run={"steps": 12, "checkpoint_every": 6})
    t2 = Trainer(cfg2, data=data)
    t2.fit(stop_at=6)
    t3 = Trainer(cfg2, data=data, resume=cfg2.run.out_dir)
    torch.manual_seed(999)  # clobber the restored RNG
    t3.fit()
    assert any(not torch.equal(v, weights(t3.model)[k]) for k, v in weights(t1.model).items())


def test_task_counts_follow_schedule_and_idle_heads_untouched(tmp_path):
    data = tiny_data()
    cfg = tiny_cfg(tmp_path, schedule={"kind": "task_by_task"}, run={"steps": 10, "eval_every": 100})
    tr = Trainer(cfg, data=data)
    aud_head = weights(tr.model.heads["aud"])
    for _ in range(5):  # the first half is all `img`
        tr.train_step()
    assert tr.task_steps == {"img": 5, "aud": 0}
    after = weights(tr.model.heads["aud"])
    assert all(torch.equal(aud_head[k], after[k]) for k in aud_head)  # no update, no weight decay
    assert tr.schedule.counts(0, 10) == {"img": 5, "aud": 5}


def test_per_task_lr_multiplier_and_loss_scaling(tmp_path):
    data = tiny_data()
    tasks_lr = [{"name": "img", "source": {"kind": "world", "name": "shapes"}, "lr_mult": 1.0},
                {"name": "aud", "source": {"kind": "world", "name": "shapes"}, "lr_mult": 4.0}]
    cfg = tiny_cfg(tmp_path, schedule={"kind": "alternating"}, optim={"lr": 1e-3, "warmup_steps": 0, "decay": "constant"})
    cfg = cfg.model_copy(update={"tasks": [t.model_copy(update={"lr_mult": m["lr_mult"]}) for t, m in zip(cfg.tasks, tasks_lr)]})
    tr = Trainer(cfg, data=data)
    tr.train_step()  # img
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    tr.train_step()  # aud
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(4e-3)

    cfg_ls = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"task_lr_mode": "loss_scale"})})
    tr2 = Trainer(cfg_ls, data=data)
    assert tr2.loss_scale == {"img": 1.0, "aud": 4.0}
    tr2.train_step()
    tr2.train_step()
    assert tr2.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # base LR, loss scaled instead


def test_accumulate_makes_one_update_per_round(tmp_path):
    data = tiny_data()
    cfg = tiny_cfg(tmp_path, schedule={"kind": "accumulate"})
    tr = Trainer(cfg, data=data)
    tr.train_step()
    tr.train_step()
    assert tr.task_steps == {"img": 2, "aud": 2}
    state = tr.optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in state.values()} == {2}  # two AdamW updates, not four


def test_nan_loss_stops_with_task_and_step_and_keeps_checkpoint(tmp_path):
    data = tiny_data()
    cfg = tiny_cfg(tmp_path, schedule={"kind": "alternating"}, run={"steps": 30, "checkpoint_every": 10})
    tr = Trainer(cfg, data=data)
    tr.fit(stop_at=10)
    good = load_checkpoint(cfg.run.out_dir)
    data["aud"].train.arrays["audio"][:] = float("nan")
    tr2 = Trainer(cfg, data=data, resume=cfg.run.out_dir)
    with pytest.raises(TrainingDiverged, match=r"task 'aud' at step 11.*last good checkpoint"):
        tr2.fit()
    after = load_checkpoint(cfg.run.out_dir)
    assert after["dir"] == good["dir"] and after["state"]["step"] == 10
    assert all(torch.equal(good["model"][k], after["model"][k]) for k in good["model"])


def test_fit_learns_and_writes_logs_results(tmp_path):
    data = tiny_data()
    cfg = tiny_cfg(tmp_path, run={"steps": 60, "tensorboard": True})
    results = Trainer(cfg, data=data).fit()
    for name, r in results.items():
        assert r["metric"] == "top1" and r["value"] > r["chance"] + 0.2, (name, r)
        assert r["steps"] > 0 and r["time_s"] > 0
    out = tmp_path / "run"
    assert json.loads((out / "results.json").read_text()).keys() == results.keys()
    log = read_log(out)
    kinds = {r["kind"] for r in log}
    assert {"event", "train", "eval"} <= kinds
    train = [r for r in log if r["kind"] == "train"]
    assert train[0]["step"] == 5 and "lr" in train[0] and "steps_per_s" in train[0]
    assert [r["split"] for r in log if r["kind"] == "eval"][-1] == "test"
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())


def test_resume_with_other_tasks_is_an_error(tmp_path):
    data = tiny_data()
    cfg = tiny_cfg(tmp_path, run={"steps": 10})
    Trainer(cfg, data=data).fit()
    other = tiny_cfg(tmp_path, tasks=("img",), run={"steps": 10})
    with pytest.raises(ValueError, match="checkpoint tasks"):
        Trainer(other, data={"img": data["img"]}, resume=cfg.run.out_dir)


def test_training_time_excludes_the_final_test_evaluation(tmp_path, monkeypatch):
    import time

    import cotrain.train.evaluate as evaluate

    slow = 0.4
    top1 = evaluate.METRICS["top1"]

    def slow_top1(*args, **kw):  # an evaluation that takes `slow` seconds more than it would
        time.sleep(slow)
        return top1(*args, **kw)

    monkeypatch.setitem(evaluate.METRICS, "top1", slow_top1)
    cfg = tiny_cfg(tmp_path, run={"steps": 6, "eval_every": 4})  # one validation of both tasks at step 4
    trainer = Trainer(cfg, data=tiny_data())
    t0 = time.perf_counter()
    results = trainer.fit()
    wall = time.perf_counter() - t0
    timing = trainer.timing
    assert timing["test_s"] >= 2 * slow and timing["val_s"] >= 2 * slow  # two tasks, each evaluated once per split
    assert timing["train_s"] >= timing["val_s"]  # validation happens inside training
    assert timing["train_s"] + timing["test_s"] <= wall + 0.05 and timing["train_s"] <= wall - 2 * slow
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    for name in ("img", "aud"):
        assert slow <= saved[name]["eval_time_s"] <= timing["test_s"] and saved[name]["time_s"] < timing["train_s"]
    assert sum(r["eval_time_s"] for r in results.values()) == pytest.approx(timing["test_s"], abs=0.05)
    done = [r for r in read_log(tmp_path / "run") if r.get("message") == "done"]
    assert len(done) == 1 and {k: done[0][k] for k in timing} == timing
