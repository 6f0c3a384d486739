"""Ways to damage a real training checkpoint, and the message each must give (shared by the
checkpoint, trainer and CLI tests).

Each case is ``(id, file, damage, pattern)``: ``damage(ckpt_dir)`` breaks ``ckpt_dir / file`` and the
resulting ``CheckpointError`` message must contain the file's path followed by text matching
``pattern``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from synthetic import tiny_cfg, tiny_data

from cotrain.train.checkpoint_state import STATE_VERSION


def train_tiny_run(tmp: Path, steps: int = 4) -> Path:
    """Train the two-task synthetic config for ``steps`` steps (one checkpoint, at the end); return the run folder."""
    from cotrain.train.trainer import Trainer

    cfg = tiny_cfg(tmp, run={"steps": steps, "checkpoint_every": steps, "eval_every": 1000})
    Trainer(cfg, data=tiny_data()).fit()
    return Path(cfg.run.out_dir)


def copy_run(run: Path, dest: Path) -> tuple[Path, Path]:
    """A private copy of a run folder; returns ``(run_copy, its_latest_checkpoint_folder)``."""
    shutil.copytree(run, dest)
    latest = (dest / "checkpoints" / "latest").read_text().strip()
    return dest, dest / "checkpoints" / latest


# ------------------------------------------------------------------------------ damage primitives
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a safetensors file, just some bytes\n" * 20)


def edit_state(ckpt: Path, edit) -> None:
    path = ckpt / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps(edit(state)))


def edit_tensors(path: Path, edit) -> None:
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def first_matrix(tensors: dict[str, torch.Tensor]) -> str:
    return sorted(k for k, v in tensors.items() if v.ndim == 2)[0]


def _with(state: dict, **fields) -> dict:
    return {**state, **fields}


def _without(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


def _delete(path: Path) -> None:
    path.unlink()


# ------------------------------------------------------------------------------ cases read by load_checkpoint
M, O, S = "model.safetensors", "optimizer.safetensors", "state.json"

FILE_CASES = [
    ("model-truncated", M, lambda d: truncate(d / M), r": truncated .*bytes"),
    ("model-truncated-header", M, lambda d: truncate_header(d / M), r": truncated .*header"),
    ("model-empty", M, lambda d: empty(d / M), r": empty file \(0 bytes\)"),
    ("model-garbage", M, lambda d: garbage(d / M), r": not a safetensors file"),
    ("model-missing", M, lambda d: _delete(d / M), r": missing"),
    ("optimizer-truncated", O, lambda d: truncate(d / O), r": truncated .*bytes"),
    ("optimizer-empty", O, lambda d: empty(d / O), r": empty file \(0 bytes\)"),
    ("optimizer-garbage", O, lambda d: garbage(d / O), r": not a safetensors file"),
    ("state-missing", S, lambda d: _delete(d / S), r": missing"),
    ("state-empty", S, lambda d: (d / S).write_text(""), r": empty file \(0 bytes\)"),
    ("state-not-json", S, lambda d: (d / S).write_text('{"step": 4,'), r": not valid JSON \(.*line 1 column"),
    ("state-list", S, lambda d: (d / S).write_text("[1, 2]"), r": expected a JSON object .*found a list"),
    ("state-unknown-field", S, lambda d: edit_state(d, lambda s: _with(s, stepz=3)), r": unknown field 'stepz'"),
    ("state-missing-field", S, lambda d: edit_state(d, lambda s: _without(s, "iterators")), r": missing field 'iterators'"),
    ("state-step-string", S, lambda d: edit_state(d, lambda s: _with(s, step="4")), r": field 'step' must be an integer >= 0, found str '4'"),
    ("state-step-float", S, lambda d: edit_state(d, lambda s: _with(s, step=4.5)), r": field 'step' must be an integer >= 0, found float 4.5"),
    ("state-step-bool", S, lambda d: edit_state(d, lambda s: _with(s, step=True)), r": field 'step' must be an integer >= 0, found bool True"),
    ("state-step-negative", S, lambda d: edit_state(d, lambda s: _with(s, step=-1)), r": field 'step' must be an integer >= 0, found int -1"),
    ("state-config-list", S, lambda d: edit_state(d, lambda s: _with(s, config=[])), r": field 'config' must be an object, found list"),
    ("state-task-without-name", S, lambda d: edit_state(d, lambda s: _with(s, tasks=[{}])), r": field 'tasks\[0\]' must be an object with a string 'name'"),
    ("state-version-newer", S, lambda d: edit_state(d, lambda s: _with(s, version=99)),
     rf": checkpoint state version 99, but this cotrain reads version {STATE_VERSION} \(written by a newer cotrain"),
    ("state-version-missing", S, lambda d: edit_state(d, lambda s: _without(s, "version")), r": missing field 'version'"),
    ("state-version-string", S, lambda d: edit_state(d, lambda s: _with(s, version="1")), r": field 'version' must be an integer, found str '1'"),
]


# ------------------------------------------------------------------------------ cases found when matching a model / optimizer
def _reshape_first(t: dict) -> None:
    key = first_matrix(t)
    t[key] = torch.zeros(t[key].shape[0] + 1, t[key].shape[1])


def _drop_first(t: dict) -> None:
    del t[first_matrix(t)]


def _add_extra(t: dict) -> None:
    t["heads.ghost.weight"] = torch.zeros(2, 3)


def _moment_key(t: dict) -> str:
    return sorted(k for k in t if k.endswith(".exp_avg") and t[k].ndim == 2)[0]


def _reshape_moment(t: dict) -> None:
    key = _moment_key(t)
    t[key] = torch.zeros(t[key].shape[0] + 1, t[key].shape[1])


def _drop_moment(t: dict) -> None:
    del t[_moment_key(t)]


def _bad_rng(t: dict) -> None:
    t["rng.torch"] = torch.zeros(7, dtype=torch.uint8)


def _fewer_groups(s: dict) -> dict:
    s["optimizer"]["param_groups"] = s["optimizer"]["param_groups"][:1]
    return s


MODEL_CASES = [  # (id, damage, pattern) on model.safetensors; ``{key}`` stands for the first matrix's name
    ("tensor-wrong-shape", _reshape_first, r": does not match the model .*'{key}' has shape \[\d+, \d+\] in the file but \[\d+, \d+\] in the model"),
    ("tensor-missing", _drop_first, r": does not match the model .*missing tensor '{key}' \[\d+, \d+\]"),
    ("tensor-unexpected", _add_extra, r": does not match the model .*unexpected tensor 'heads.ghost.weight' \[2, 3\]"),
]

OPTIMIZER_CASES = [  # (id, file, damage(ckpt_dir), pattern)
    ("moment-wrong-shape", O, lambda d: edit_tensors(d / O, _reshape_moment),
     r": optimizer state does not match the model's parameters: 'state\.\d+\.exp_avg' has shape \[\d+, \d+\] in the file but parameter \d+ has \[\d+, \d+\]"),
    ("moment-missing", O, lambda d: edit_tensors(d / O, _drop_moment),
     r": optimizer state does not match the model's parameters: parameter \d+ lacks 'exp_avg'"),
    ("rng-wrong-size", O, lambda d: edit_tensors(d / O, _bad_rng), r": 'rng.torch' is not a torch RNG state"),
    ("param-groups", S, lambda d: edit_state(d, _fewer_groups), r": optimizer state does not match the model's parameters: .*parameter group"),
]
