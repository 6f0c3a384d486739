"""Checkpoints: round trip, optimizer state, atomicity under failure and under SIGKILL, one clear
error per kind of damage, falling back (with a warning) past an unreadable newest checkpoint, and
the CUDA RNG states."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

from checkpoint_corruptions import FILE_CASES, copy_run, train_tiny_run, truncate
from cotrain.train import checkpoint as ck
from cotrain.train.trainer import STATE_VERSION


def state(step, **extra):
    """A ``state.json`` with every field the schema requires (contents are placeholders)."""
    return {"version": STATE_VERSION, "step": step, "config": {}, "tasks": [], "class_names": {},
            "sample_rate": {}, "schedule": {}, "iterators": {}, "hooks": {}, "task_steps": {},
            "task_time": {}, "history": [], **extra}


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
    path = ck.save_checkpoint(tmp_path, 10, model, state(10, history=[{"note": "x"}]), opt)
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
    ck.save_checkpoint(tmp_path / "run" / "checkpoints", 1, model, state(1), opt)
    p2 = ck.save_checkpoint(tmp_path / "run" / "checkpoints", 2, model, state(2), opt)
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
        ck.save_checkpoint(tmp_path, step, model, state(step), opt, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_0000004", "step_0000005"]


def test_failure_during_save_keeps_previous(tmp_path, monkeypatch):
    model, opt = tiny()
    good = ck.save_checkpoint(tmp_path, 1, model, state(1), opt)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 2, model, state(2), opt)
    assert ck.resolve_checkpoint(tmp_path) == good
    assert ck.load_checkpoint(tmp_path)["state"]["step"] == 1


SAVER = textwrap.dedent(
    """
    import json, sys, torch
    from cotrain.train.checkpoint import save_checkpoint
    root, template = sys.argv[1], json.loads(sys.argv[2])
    model = torch.nn.Linear(1500, 1500)  # ~9 MB per save, so a kill lands mid-write often
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            model.weight.fill_(step)
        save_checkpoint(root, step, model, {**template, "step": step}, keep=2)
        print(step, flush=True)
    """
)


def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a process that saves in a loop at several moments; the latest checkpoint always loads
    and is internally consistent (its weights equal its step)."""
    for delay in (0.35, 0.6, 0.9):
        root = tmp_path / f"r{delay}"
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(root), json.dumps(state(0))], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # at least one complete save
        assert first.strip() == "1"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loaded = ck.load_checkpoint(root)
        step = loaded["state"]["step"]
        assert step >= 1
        assert torch.all(loaded["model"]["weight"] == step)


# ------------------------------------------------------------------------------ damaged checkpoints
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real (tiny) training run with one checkpoint, at step 4."""
    return train_tiny_run(tmp_path_factory.mktemp("ckpt-run"))


@pytest.mark.parametrize("case, file, damage, pattern", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_damaged_checkpoint_is_one_clear_error(run, tmp_path, case, file, damage, pattern):
    """Whether given the checkpoint folder or the run folder: one CheckpointError, one line, naming
    the damaged file and what is wrong with it."""
    run_copy, ckpt = copy_run(run, tmp_path / "run")
    damage(ckpt)
    expected = re.escape(str(ckpt / file)) + pattern
    for where in (ckpt, run_copy):
        with pytest.raises(ck.CheckpointError) as err:
            ck.load_checkpoint(where)
        assert re.search(expected, str(err.value)), str(err.value)
        assert "\n" not in str(err.value)


def test_undamaged_real_checkpoint_loads(run):
    """The oracle for the cases above: the same checkpoint, undamaged, loads and passes the schema."""
    loaded = ck.load_checkpoint(run)
    assert loaded["state"]["step"] == 4 and loaded["state"]["version"] == STATE_VERSION
    assert loaded["extra"] is not None and "rng.torch" in loaded["extra"]


def test_missing_optimizer_file_still_loads_weights(run, tmp_path):
    """Evaluation needs only the weights: without optimizer.safetensors the checkpoint loads, and says so."""
    _, ckpt = copy_run(run, tmp_path / "run")
    (ckpt / "optimizer.safetensors").unlink()
    loaded = ck.load_checkpoint(ckpt)
    assert loaded["extra"] is None and loaded["model"]


def test_older_version_is_refused_naming_both(run, tmp_path):
    _, ckpt = copy_run(run, tmp_path / "run")
    st = json.loads((ckpt / "state.json").read_text())
    (ckpt / "state.json").write_text(json.dumps({**st, "version": 0}))
    with pytest.raises(ck.CheckpointError, match=rf"state version 0, but this cotrain reads version {STATE_VERSION} \(written by an older"):
        ck.load_checkpoint(ckpt)


# ------------------------------------------------------------------------------ which checkpoint is used
def three_checkpoints(root):
    model, opt = tiny()
    return [ck.save_checkpoint(root, s, model, state(s), opt) for s in (1, 2, 3)]


def test_unreadable_newest_falls_back_with_a_warning_naming_both(tmp_path):
    _, p2, p3 = three_checkpoints(tmp_path)
    truncate(p3 / "model.safetensors")
    with pytest.warns(ck.CheckpointWarning) as rec:
        loaded = ck.load_checkpoint(tmp_path)
    assert loaded["dir"] == p2 and loaded["state"]["step"] == 2
    msg = str(rec[0].message)
    assert str(p3 / "model.safetensors") in msg and "truncated" in msg and f"using the older checkpoint {p2}" in msg


def test_incomplete_newest_falls_back_with_a_warning(tmp_path):
    _, p2, p3 = three_checkpoints(tmp_path)
    (p3 / "state.json").unlink()
    with pytest.warns(ck.CheckpointWarning, match=re.escape(str(p3 / "state.json")) + ": missing.*" + re.escape(str(p2))):
        assert ck.load_checkpoint(tmp_path)["dir"] == p2


def test_latest_naming_a_missing_folder_falls_back_with_a_warning(tmp_path):
    _, _, p3 = three_checkpoints(tmp_path)
    (tmp_path / "latest").write_text("step_0000009")
    with pytest.warns(ck.CheckpointWarning, match=r"latest names step_0000009, which does not exist.*" + re.escape(str(p3))):
        assert ck.load_checkpoint(tmp_path)["dir"] == p3


def test_unreadable_newest_skips_to_the_newest_readable(tmp_path):
    p1, p2, p3 = three_checkpoints(tmp_path)
    truncate(p3 / "model.safetensors")
    (p2 / "state.json").write_text("[]")
    with pytest.warns(ck.CheckpointWarning, match=f"using the older checkpoint {re.escape(str(p1))}"):
        assert ck.load_checkpoint(tmp_path)["dir"] == p1


def test_every_checkpoint_unreadable_is_an_error_about_the_newest(tmp_path):
    p1, p2, p3 = three_checkpoints(tmp_path)
    for p in (p1, p2, p3):
        (p / "model.safetensors").write_bytes(b"")
    with pytest.raises(ck.CheckpointError, match=re.escape(str(p3 / "model.safetensors")) + r": empty file.*2 older checkpoints are unreadable too"):
        ck.load_checkpoint(tmp_path)


def test_an_explicit_checkpoint_folder_never_falls_back(tmp_path):
    _, _, p3 = three_checkpoints(tmp_path)
    truncate(p3 / "model.safetensors")
    with pytest.raises(ck.CheckpointError, match=re.escape(str(p3 / "model.safetensors")) + ": truncated"):
        ck.load_checkpoint(p3)


def test_readable_newest_gives_no_warning(tmp_path, recwarn):
    *_, p3 = three_checkpoints(tmp_path)
    assert ck.load_checkpoint(tmp_path)["dir"] == p3
    assert not [w for w in recwarn if issubclass(w.category, ck.CheckpointWarning)]


# ------------------------------------------------------------------------------ CUDA random state
def fake_cuda(monkeypatch, states):
    """Pretend CUDA is available with one generator per state; return the list of restored states."""
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(states))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda new: restored.append([s.clone() for s in new]))
    return restored


def test_cuda_rng_states_are_saved_and_restored(tmp_path, monkeypatch):
    from cotrain.train.rng import restore_rng

    states = [torch.arange(16, dtype=torch.uint8), torch.arange(100, 116, dtype=torch.uint8)]
    restored = fake_cuda(monkeypatch, states)
    model, opt = tiny()
    path = ck.save_checkpoint(tmp_path, 1, model, state(1), opt)
    raw = load_file(str(path / "optimizer.safetensors"))
    assert torch.equal(raw["rng.cuda.0"], states[0]) and torch.equal(raw["rng.cuda.1"], states[1])

    torch.manual_seed(5)
    expected_cpu = torch.rand(2)
    torch.manual_seed(5)
    ck.save_checkpoint(tmp_path, 2, model, state(2), opt)  # the CPU state at seed 5
    torch.manual_seed(99)
    loaded = ck.load_checkpoint(tmp_path)
    notes = restore_rng(loaded["extra"], loaded["dir"] / "optimizer.safetensors")
    assert notes == []
    assert len(restored) == 1 and [torch.equal(a, b) for a, b in zip(restored[0], states)] == [True, True]
    assert torch.equal(torch.rand(2), expected_cpu)


def test_without_cuda_no_cuda_state_is_written_or_touched(tmp_path, monkeypatch):
    from cotrain.train.rng import restore_rng

    def never(*a):
        raise AssertionError("CUDA RNG touched on a machine without CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", never)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", never)
    model, opt = tiny()
    path = ck.save_checkpoint(tmp_path, 1, model, state(1), opt)
    raw = load_file(str(path / "optimizer.safetensors"))
    assert not [k for k in raw if k.startswith("rng.cuda")]
    assert restore_rng(raw, path / "optimizer.safetensors") == []


def test_cpu_checkpoint_resumed_with_cuda_says_the_cuda_stream_differs(tmp_path, monkeypatch):
    from cotrain.train.rng import restore_rng

    model, opt = tiny()
    path = ck.save_checkpoint(tmp_path, 1, model, state(1), opt)
    restored = fake_cuda(monkeypatch, [torch.zeros(16, dtype=torch.uint8)])
    notes = restore_rng(load_file(str(path / "optimizer.safetensors")), path / "optimizer.safetensors")
    assert restored == [] and len(notes) == 1 and "saved without CUDA" in notes[0]


def test_fewer_cuda_devices_restore_what_they_can_and_say_so(tmp_path, monkeypatch):
    from cotrain.train.rng import restore_rng

    states = [torch.arange(16, dtype=torch.uint8), torch.arange(100, 116, dtype=torch.uint8)]
    fake_cuda(monkeypatch, states)
    model, opt = tiny()
    path = ck.save_checkpoint(tmp_path, 1, model, state(1), opt)
    restored = fake_cuda(monkeypatch, states[:1])
    notes = restore_rng(load_file(str(path / "optimizer.safetensors")), path / "optimizer.safetensors")
    assert len(restored) == 1 and len(restored[0]) == 1 and torch.equal(restored[0][0], states[0])
    assert len(notes) == 1 and "2 CUDA devices" in notes[0] and "1 here" in notes[0]
