"""Trainer.restore on damaged checkpoints: one clear CheckpointError per kind of damage, a missing
optimizer state refused unless inexact resume is allowed (then a loud warning and a log event), the
state.json schema in step with Trainer.state(), and the CUDA RNG states through save and resume."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from safetensors.torch import load_file

import cotrain
from checkpoint_corruptions import (
    FILE_CASES, MODEL_CASES, OPTIMIZER_CASES, copy_run, edit_tensors, first_matrix, train_tiny_run,
)
from synthetic import tiny_cfg, tiny_data
from cotrain.train.checkpoint import CheckpointError, CheckpointWarning
from cotrain.train.checkpoint_state import STATE_FIELDS
from cotrain.train.logging import read_log
from cotrain.train.trainer import Trainer

STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real (tiny) training run with one checkpoint, at step 4."""
    return train_tiny_run(tmp_path_factory.mktemp("resume-run"), steps=STEPS)


def cfg_for(tmp_path, steps=STEPS):
    """The run's config with its out_dir at ``tmp_path / "run"`` (where :func:`copy_run` puts the copy)."""
    return tiny_cfg(tmp_path, run={"steps": steps, "checkpoint_every": STEPS, "eval_every": 1000})


def resume(tmp_path, **kw):
    return Trainer(cfg_for(tmp_path, kw.pop("steps", STEPS)), data=tiny_data(), resume=tmp_path / "run", **kw)


def assert_one_error(err, expected):
    msg = str(err.value)
    assert re.search(expected, msg), msg
    assert "\n" not in msg


@pytest.mark.parametrize("case, file, damage, pattern", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_resume_from_damaged_file_is_one_clear_error(run, tmp_path, case, file, damage, pattern):
    _, ckpt = copy_run(run, tmp_path / "run")
    damage(ckpt)
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    assert_one_error(err, re.escape(str(ckpt / file)) + pattern)


@pytest.mark.parametrize("case, damage, pattern", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_weights_not_matching_the_model_name_the_tensor_and_shapes(run, tmp_path, case, damage, pattern):
    """Trainer(resume=...) and cotrain.load (eval / predict) both name the tensor and its shapes."""
    _, ckpt = copy_run(run, tmp_path / "run")
    key = first_matrix(load_file(str(ckpt / "model.safetensors")))
    edit_tensors(ckpt / "model.safetensors", damage)
    expected = re.escape(str(ckpt / "model.safetensors")) + pattern.replace("{key}", re.escape(key))
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    assert_one_error(err, expected)
    with pytest.raises(CheckpointError) as err:
        cotrain.load(tmp_path / "run")
    assert_one_error(err, expected)


@pytest.mark.parametrize("case, file, damage, pattern", OPTIMIZER_CASES, ids=[c[0] for c in OPTIMIZER_CASES])
def test_optimizer_state_not_matching_is_one_clear_error(run, tmp_path, case, file, damage, pattern):
    _, ckpt = copy_run(run, tmp_path / "run")
    damage(ckpt)
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    assert_one_error(err, re.escape(str(ckpt / file)) + pattern)


def test_undamaged_checkpoint_resumes(run, tmp_path):
    """The oracle for the cases above: the same copy, undamaged, resumes without a warning."""
    _, ckpt = copy_run(run, tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        tr = resume(tmp_path)
    assert tr.step == STEPS and tr.last_checkpoint == ckpt


def test_missing_optimizer_state_is_refused_unless_inexact_resume_is_allowed(run, tmp_path):
    _, ckpt = copy_run(run, tmp_path / "run")
    (ckpt / "optimizer.safetensors").unlink()
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    assert_one_error(err, re.escape(str(ckpt / "optimizer.safetensors")) + r": missing.*allow-inexact-resume")

    assert cotrain.load(tmp_path / "run").tasks == ["img", "aud"]  # eval / predict need only the weights

    with pytest.warns(CheckpointWarning, match=r"INEXACT resume.*optimizer moments.*RNG state.*reset"):
        tr = resume(tmp_path, steps=STEPS + 3, allow_inexact_resume=True)
    assert tr.step == STEPS
    saved = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in tr.model.state_dict().items())
    assert tr.optimizer.state_dict()["state"] == {}  # fresh moments
    tr.fit()
    events = [r for r in read_log(tmp_path / "run") if r["kind"] == "event" and r.get("message") == "inexact resume"]
    assert len(events) == 1 and events[0]["step"] == STEPS
    assert "optimizer.safetensors" in events[0]["reason"] and events[0]["checkpoint"] == str(ckpt)
    assert tr.step == STEPS + 3


def test_state_json_schema_lists_exactly_what_the_trainer_writes(tmp_path):
    """Trainer.state() plus save_checkpoint's "optimizer" field are the schema's fields, no more, no less."""
    tr = Trainer(cfg_for(tmp_path), data=tiny_data())
    assert set(tr.state()) | {"optimizer"} == set(STATE_FIELDS)


def test_cuda_rng_states_go_through_save_and_resume(tmp_path, monkeypatch):
    """No GPU here: fake CUDA generators. The states in the checkpoint are the ones given back at resume."""
    saved_states = [torch.arange(16, dtype=torch.uint8), torch.arange(50, 66, dtype=torch.uint8)]
    restored = []
    tr = Trainer(cfg_for(tmp_path), data=tiny_data())
    tr.train_step()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in saved_states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append([s.clone() for s in states]))
    path = tr.save()
    raw = load_file(str(path / "optimizer.safetensors"))
    assert [k for k in sorted(raw) if k.startswith("rng.cuda")] == ["rng.cuda.0", "rng.cuda.1"]
    resumed = Trainer(cfg_for(tmp_path), data=tiny_data(), resume=path)
    assert resumed.step == 1
    assert len(restored) == 1 and all(torch.equal(a, b) for a, b in zip(restored[0], saved_states))


def test_missing_rng_state_alone_is_refused_and_when_allowed_only_it_is_reset(run, tmp_path):
    _, ckpt = copy_run(run, tmp_path / "run")
    edit_tensors(ckpt / "optimizer.safetensors", lambda t: t.pop("rng.torch"))
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    assert_one_error(err, re.escape(str(ckpt / "optimizer.safetensors")) + r": has no 'rng.torch'.*so the RNG state cannot be restored")
    with pytest.warns(CheckpointWarning, match=r"INEXACT resume.*so the RNG state is reset"):
        tr = resume(tmp_path, allow_inexact_resume=True)
    moments = {k: v for k, v in load_file(str(ckpt / "optimizer.safetensors")).items() if k.endswith(".exp_avg")}
    restored = tr.optimizer.state_dict()["state"]  # the optimizer state was there, so it is restored
    assert moments and all(torch.equal(restored[int(k.split(".")[1])]["exp_avg"], v) for k, v in moments.items())
