"""Checkpoints: round trip, optimizer state, atomicity under failure and under SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from cotrain.train import checkpoint as ck


def tiny():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_weights_optimizer_rng(tmp_path):
    model, opt = tiny()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    path = ck.save_checkpoint(tmp_path, 10, model, {"step": 10, "note": "x"}, opt)
    assert path.name == "step_0000010" and (tmp_path / "latest").read_text() == path.name
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded["state"]["step"] == 10
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["model"][k], v)
    model2, opt2 = tiny()
    opt2.load_state_dict(ck.optimizer_from_flat(loaded["extra"], loaded["state"]["optimizer"]))
    for (a, b) in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    torch.set_rng_state(loaded["extra"]["rng.torch"])
    assert torch.equal(torch.rand(3), expected_next)


def test_resolve_accepts_run_dir_and_checkpoint_dir(tmp_path):
    model, opt = tiny()
    ck.save_checkpoint(tmp_path / "run" / "checkpoints", 1, model, {"step": 1}, opt)
    p2 = ck.save_checkpoint(tmp_path / "run" / "checkpoints", 2, model, {"step": 2}, opt)
    assert ck.resolve_checkpoint(tmp_path / "run") == p2
    assert ck.resolve_checkpoint(p2) == p2
    with pytest.raises(ck.CheckpointError, match="no such"):
        ck.resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ck.CheckpointError, match="no complete checkpoint"):
        ck.resolve_checkpoint(tmp_path / "empty")


def test_prune_keeps_newest(tmp_path):
    model, opt = tiny()
    for step in range(1, 6):
        ck.save_checkpoint(tmp_path, step, model, {"step": step}, opt, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_0000004", "step_0000005"]


def test_failure_during_save_keeps_previous(tmp_path, monkeypatch):
    model, opt = tiny()
    good = ck.save_checkpoint(tmp_path, 1, model, {"step": 1}, opt)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 2, model, {"step": 2}, opt)
    assert ck.resolve_checkpoint(tmp_path) == good
    assert ck.load_checkpoint(tmp_path)["state"]["step"] == 1


SAVER = textwrap.dedent(
    """
    import sys, torch
    from cotrain.train.checkpoint import save_checkpoint
    root = sys.argv[1]
    model = torch.nn.Linear(1500, 1500)  # ~9 MB per save, so a kill lands mid-write often
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            model.weight.fill_(step)
        save_checkpoint(root, step, model, {"step": step}, keep=2)
        print(step, flush=True)
    """
)


def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a process that saves in a loop at several moments; the latest checkpoint always loads
    and is internally consistent (its weights equal its step)."""
    for delay in (0.35, 0.6, 0.9):
        root = tmp_path / f"r{delay}"
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(root)], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # at least one complete save
        assert first.strip() == "1"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loaded = ck.load_checkpoint(root)
        step = loaded["state"]["step"]
        assert step >= 1
        assert torch.all(loaded["model"]["weight"] == step)
