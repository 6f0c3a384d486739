"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint (a folder)::

    RUN/checkpoints/step_000500/
        model.safetensors      model weights
        optimizer.safetensors  optimizer state tensors + the torch RNG state
        state.json             step, config, task specs, schedule / iterator state, optimizer scalars
        vocab.txt              the tokenizer vocabulary, when the run has text
    RUN/checkpoints/latest     the name of the newest complete checkpoint

A checkpoint is written into a temporary sibling folder, flushed, then renamed into place, and only
then does ``latest`` (itself replaced atomically) point at it. A process killed mid-save leaves the
previous checkpoint and ``latest`` untouched; leftover temporary folders are ignored and cleaned.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CotrainError

CKPT_PREFIX = "step_"
TMP_MARK = ".tmp-"


class CheckpointError(CotrainError, RuntimeError):
    """A checkpoint is missing, incomplete or does not match the configuration."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, writer) -> None:
    writer(path)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into flat tensors (for safetensors) and JSON-able scalars."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, pstate in sd["state"].items():
        scalars["state"][str(pid)] = {}
        for key, val in pstate.items():
            if torch.is_tensor(val):
                tensors[f"state.{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars["state"][str(pid)][key] = val
    return tensors, scalars


def optimizer_from_flat(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in scalars["state"].items()}
    for name, val in tensors.items():
        if not name.startswith("state."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = val
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(
    ckpt_root: str | Path,
    step: int,
    model: torch.nn.Module,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    vocab_file: str | Path | None = None,
    keep: int | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``ckpt_root`` atomically and return its folder."""
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{CKPT_PREFIX}{step:07d}"
    tmp = root / f"{final.name}{TMP_MARK}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_file(tmp / "model.safetensors", lambda p: save_file(weights, str(p)))
    state = dict(state)
    extra = {"rng.torch": torch.get_rng_state()}
    if optimizer is not None:
        opt_tensors, opt_scalars = optimizer_to_flat(optimizer)
        extra.update(opt_tensors)
        state["optimizer"] = opt_scalars
    _write_file(tmp / "optimizer.safetensors", lambda p: save_file(extra, str(p)))
    _write_file(tmp / "state.json", lambda p: p.write_text(json.dumps(state, indent=1, default=_json_default)))
    if vocab_file is not None:
        shutil.copyfile(vocab_file, tmp / "vocab.txt")
    _fsync_dir(tmp)

    if final.exists():  # re-saving the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    latest_tmp = root / f"latest{TMP_MARK}{os.getpid()}"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, root / "latest")
    _fsync_dir(root)
    if keep is not None:
        prune(root, keep)
    return final


def _json_default(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def list_checkpoints(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX) and TMP_MARK not in p.name]
    return sorted((p for p in done if (p / "state.json").is_file()), key=lambda p: p.name)


def prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints (never the one ``latest`` names); remove stale temp folders."""
    latest = (root / "latest").read_text().strip() if (root / "latest").is_file() else None
    ckpts = list_checkpoints(root)
    for old in ckpts[: max(0, len(ckpts) - keep)]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)
    for p in root.iterdir():  # temp folders left by killed writers (never a live process's)
        if TMP_MARK in p.name and not _pid_alive(p.name.rsplit(TMP_MARK, 1)[1]):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint folder, a ``checkpoints`` folder, or a run folder; return a checkpoint folder."""
    path = Path(path)
    if (path / "state.json").is_file() and (path / "model.safetensors").is_file():
        return path
    for root in (path, path / "checkpoints"):
        if (root / "latest").is_file():
            cand = root / (root / "latest").read_text().strip()
            if (cand / "state.json").is_file():
                return cand
        ckpts = list_checkpoints(root)
        if ckpts:
            return ckpts[-1]
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run folder")
    raise CheckpointError(f"{path}: no complete checkpoint found (expected model.safetensors + state.json)")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint: ``{"dir", "state", "model", "extra"}`` (tensors on CPU)."""
    ckpt = resolve_checkpoint(path)
    try:
        state = json.loads((ckpt / "state.json").read_text())
        model = load_file(str(ckpt / "model.safetensors"))
        extra_path = ckpt / "optimizer.safetensors"
        extra = load_file(str(extra_path)) if extra_path.is_file() else {}
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{ckpt}: unreadable checkpoint ({err})") from None
    return {"dir": ckpt, "state": state, "model": model, "extra": extra}
