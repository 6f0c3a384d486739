"""The trainer with 12-in-1's controllers: Dynamic Stop-and-Go, curriculum pre-phase, eta*N warm-up
and learning-rate drops."""

from __future__ import annotations

import pytest
import torch
from synthetic import tiny_cfg, tiny_data

from cotrain.config import ConfigError, config_from_dict
from cotrain.train.logging import read_log
from cotrain.train.hooks import CurriculumHook
from cotrain.train.trainer import Trainer, warmup_steps


def dsg_cfg(tmp_path, **run):
    # 96 train rows / batch 16 = 6 iterations per task epoch; huge tolerances so a task stops after
    # two flat epochs for sure and never diverges back
    return tiny_cfg(
        tmp_path, tasks=("img", "aud"),
        schedule={"kind": "alternating", "dsg": {"enabled": True, "delta": 3, "converge_tol": 10.0,
                                                  "diverge_tol": 10.0, "relative": False}},
        run={"steps": 60, "eval_every": 1000, **run},
    )


def test_dsg_stops_tasks_and_stopped_tasks_train_every_delta(tmp_path):
    t = Trainer(dsg_cfg(tmp_path), data=tiny_data(("img", "aud")))
    t.fit()
    stops = [h for h in t.dsg.history if h[2] == "stop"]
    assert {h[1] for h in stops} == {"img", "aud"}
    # each task: 3 epochs of 6 go iterations (observe at epochs 1, 2, 3 -> stop at the 3rd), then
    # 30 - 18 = 12 offered iterations of which every 3rd trains
    assert t.task_steps == {"img": 18 + 4, "aud": 18 + 4}
    assert t.step == 60
    evals = [h for h in t.history if h.get("dsg")]
    assert len(evals) >= 6 and all("dsg_state" in h for h in evals)
    logged = [r for r in read_log(t.out_dir / "log.jsonl") if r["kind"] == "dsg"]
    assert len(logged) == len(evals)
    assert [(r["step"], r["task"]) for r in logged if r.get("dsg_change") == "stop"] == [(h[0], h[1]) for h in stops]


def test_dsg_off_trains_every_offered_step(tmp_path):
    cfg = dsg_cfg(tmp_path)
    cfg.schedule.dsg.enabled = False
    t = Trainer(cfg, data=tiny_data(("img", "aud")))
    t.fit()
    assert t.task_steps == {"img": 30, "aud": 30} and t.dsg is None


def test_dsg_state_resumes_exactly(tmp_path):
    data = tiny_data(("img", "aud"))
    full = Trainer(dsg_cfg(tmp_path / "a"), data=data)
    full.fit()
    cfg = dsg_cfg(tmp_path / "b", checkpoint_every=25)
    part = Trainer(cfg, data=data)
    part.fit(stop_at=25)
    resumed = Trainer(cfg, data=data, resume=cfg.run.out_dir)
    assert resumed.dsg.state_dict() == part.dsg.state_dict()
    resumed.fit()
    assert resumed.task_steps == full.task_steps
    assert resumed.dsg.history == full.dsg.history
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_curriculum_pre_phase_trains_the_first_group_only(tmp_path):
    cfg = tiny_cfg(tmp_path, tasks=("img", "vid", "aud"), schedule={"kind": "alternating",
                   "curriculum": {"kind": "curriculum", "first_group": "G4", "steps": 10}}, run={"steps": 16})
    for t in cfg.tasks:
        t.group = "G4" if t.name == "aud" else "G1"
    with pytest.raises(ConfigError, match="first_group 'G9' is no task's group"):
        config_from_dict({**cfg.model_dump(mode="json"), "schedule": {"curriculum": {"kind": "curriculum",
                                                                                    "first_group": "G9", "steps": 3}}})
    tr = Trainer(cfg, data=tiny_data(("img", "vid", "aud")))
    (hook,) = [h for h in tr.hooks if isinstance(h, CurriculumHook)]
    assert [hook.select(tr, s, tr.schedule.tasks_at(s))[0] for s in range(10)] == ["aud"] * 10
    assert hook.select(tr, 10, ["x"]) == tr.schedule.tasks_at(0)  # then the schedule, from its step 0
    tr.fit()
    assert tr.task_steps == {"aud": 10 + 2, "img": 2, "vid": 2}


def test_warmup_eta_uses_the_largest_single_task_run(tmp_path):
    cfg = tiny_cfg(tmp_path, tasks=("img", "aud"), optim={"warmup_eta": 0.1}, run={"steps": 40})
    assert warmup_steps(cfg) == 2  # N = 40 / 2 tasks = 20
    cfg.tasks[0].steps = 70
    assert warmup_steps(cfg) == 7
    cfg.optim.warmup_eta = None
    assert warmup_steps(cfg) == cfg.optim.warmup_steps


def test_step_decay_drops_lr_and_resets_dsg(tmp_path):
    cfg = dsg_cfg(tmp_path)
    cfg.optim.decay = "step"
    cfg.optim.lr_drops = [40]
    cfg.optim.warmup_steps = 0
    t = Trainer(cfg, data=tiny_data(("img", "aud")))
    t.fit(stop_at=40)
    assert t.optimizer.param_groups[0]["lr"] == cfg.optim.lr
    assert all(t.dsg.state(n) == "stop" for n in ("img", "aud"))
    t.fit(stop_at=41)
    assert abs(t.optimizer.param_groups[0]["lr"] - cfg.optim.lr * 0.1) < 1e-12
    assert t.dsg.state("img") == "go" and t.dsg.state("aud") == "go"  # lr_drop: reset (the default)


def test_dsg_run_with_the_progress_bar_on_runs_to_completion(tmp_path, capsys):
    # the progress bar is the default; when DSG stops the step's only task the step trains nothing
    # (no loss to show) -- this used to raise StopIteration from the bar's description
    cfg = dsg_cfg(tmp_path, progress=True)
    t = Trainer(cfg, data=tiny_data(("img", "aud")))
    results = t.fit()
    assert t.step == 60 and set(results) == {"img", "aud"}
    assert sum(t.task_steps.values()) < 60  # some steps had every task stopped
    assert "60/60" in capsys.readouterr().err  # the bar ran to the end


def test_resuming_with_other_dsg_settings_is_a_config_error_naming_them(tmp_path):
    cfg = dsg_cfg(tmp_path, checkpoint_every=10)
    Trainer(cfg, data=tiny_data(("img", "aud"))).fit(stop_at=10)
    cfg.schedule.dsg.delta = 5
    with pytest.raises(ConfigError, match=r"(?s)stop-and-go settings differ.*delta: checkpoint has 3, config gives 5"):
        Trainer(cfg, data=tiny_data(("img", "aud")), resume=cfg.run.out_dir)
