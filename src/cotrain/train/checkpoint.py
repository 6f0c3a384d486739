"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint (a folder)::

    RUN/checkpoints/step_000500/
        model.safetensors      model weights
        optimizer.safetensors  optimizer state tensors + the RNG states (CPU; each CUDA device's when
                               CUDA is available; see :mod:`cotrain.train.rng`)
        state.json             step, config, task specs, schedule / iterator state, optimizer scalars
                               (fields and types: :mod:`cotrain.train.checkpoint_state`)
        vocab.txt              the tokenizer vocabulary, when the run has text
    RUN/checkpoints/latest     the name of the newest complete checkpoint

A checkpoint is written into a temporary sibling folder, flushed, then renamed into place, and only
then does ``latest`` (itself replaced atomically) point at it. A process killed mid-save leaves the
previous checkpoint and ``latest`` untouched; leftover temporary folders are ignored and cleaned.

Reading. Every file is checked, and any damage is one :class:`CheckpointError` naming the file and
what is wrong (missing, empty, truncated, not safetensors / JSON, a state.json field missing,
unknown or of the wrong type, another state version). ``model.safetensors`` and ``state.json`` are
required; ``optimizer.safetensors`` is needed only to resume (``Trainer.restore`` refuses a
checkpoint without it unless inexact resume is allowed), not to evaluate or predict.

Which checkpoint. A checkpoint folder is read as it is, never another. A run folder or its
``checkpoints`` folder gives the newest checkpoint: the one ``latest`` names, else the highest step.
If that one is incomplete or unreadable, the newest readable older one is used instead, with a
:class:`CheckpointWarning` that names the skipped checkpoint, why, and the one used: after a crash
or a damaged disk, resuming from the last good checkpoint is what one wants, and the warning keeps
it from happening silently. When none is readable, the newest one's error is raised.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CotrainError

from .checkpoint_state import state_problem
from .rng import capture_rng

CKPT_PREFIX = "step_"
TMP_MARK = ".tmp-"
CKPT_FILES = ("model.safetensors", "optimizer.safetensors", "state.json")
REQUIRED_FILES = ("model.safetensors", "state.json")
MAX_HEADER = 100_000_000  # safetensors' own limit on the length of its JSON header


class CheckpointError(CotrainError, RuntimeError):
    """A checkpoint is missing, incomplete or does not match the configuration."""


class CheckpointWarning(UserWarning):
    """A checkpoint was used with a caveat: an older one because the newest is unreadable, or an
    inexact resume that was explicitly allowed."""


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
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``ckpt_root`` atomically and return its folder.
    ``extra_tensors`` (e.g. the hooks' ``hook.<name>.*``) go into ``optimizer.safetensors``."""
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
    extra = capture_rng()
    extra.update({k: v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
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


def _step_of(path: Path) -> int:
    try:
        return int(path.name[len(CKPT_PREFIX):])
    except ValueError:
        return -1


def _is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in CKPT_FILES)


def checkpoint_candidates(path: str | Path) -> tuple[list[Path], list[str]]:
    """The checkpoint folders to try for ``path``, newest first, and notes on what was odd.

    A checkpoint folder gives itself. A run folder or a ``checkpoints`` folder gives the one
    ``latest`` names, then every ``step_*`` folder (complete or not) by decreasing step; a ``latest``
    naming a folder that does not exist gives a note.
    """
    path = Path(path)
    if _is_checkpoint_dir(path):
        return [path], []
    for root in (path, path / "checkpoints"):
        if not root.is_dir():
            continue
        found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX) and TMP_MARK not in p.name]
        found.sort(key=lambda p: (_step_of(p), p.name), reverse=True)
        notes = []
        try:
            named = (root / "latest").read_text().strip()
        except (OSError, UnicodeDecodeError):
            named = None
        if named is not None:
            if root / named in found:
                found.remove(root / named)
                found.insert(0, root / named)
            else:
                notes.append(f"{root / 'latest'} names {named}, which does not exist")
        if found:
            return found, notes
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run folder")
    raise CheckpointError(f"{path}: no complete checkpoint found (expected model.safetensors + state.json)")


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint folder, a ``checkpoints`` folder, or a run folder; return the checkpoint
    folder :func:`load_checkpoint` tries first (without reading it)."""
    return checkpoint_candidates(path)[0][0]


def _safetensors_problem(path: Path, err: Exception) -> str:
    """Why ``path`` is not a readable safetensors file, from its 8-byte header length and JSON header."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes), expected safetensors tensors"
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            return f"truncated ({size} bytes, shorter than the 8-byte safetensors header length)"
        n = int.from_bytes(prefix, "little")
        if n > MAX_HEADER:
            return f"not a safetensors file ({size} bytes; its first 8 bytes are not a header length)"
        if 8 + n > size:
            return f"truncated ({size} bytes; its header alone needs {8 + n})"
        try:
            header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"not a safetensors file ({size} bytes; its header is not a safetensors JSON header)"
    if 8 + n + end > size:
        return f"truncated ({size} bytes; its tensors need {8 + n + end})"
    return f"unreadable safetensors file ({size} bytes): {err}"


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (on the CPU), or one CheckpointError naming it and what is wrong."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: {_safetensors_problem(path, err)}") from None


def read_state(path: Path) -> dict[str, Any]:
    """A ``state.json`` parsed and checked against :mod:`cotrain.train.checkpoint_state`'s schema."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from None
    if not text.strip():
        raise CheckpointError(f"{path}: empty file ({len(raw)} bytes), expected a JSON object")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err.msg}: line {err.lineno} column {err.colno})") from None
    problem = state_problem(state)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}")
    return state


def _load_one(ckpt: Path) -> dict[str, Any]:
    for name in REQUIRED_FILES:
        if not (ckpt / name).is_file():
            raise CheckpointError(f"{ckpt / name}: missing, so the checkpoint is incomplete "
                                  f"(a complete one holds {', '.join(CKPT_FILES)})")
    state = read_state(ckpt / "state.json")
    model = read_tensors(ckpt / "model.safetensors")
    extra_path = ckpt / "optimizer.safetensors"
    extra = read_tensors(extra_path) if extra_path.is_file() else None
    return {"dir": ckpt, "state": state, "model": model, "extra": extra}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint: ``{"dir", "state", "model", "extra"}`` (tensors on CPU).

    ``extra`` holds ``optimizer.safetensors``'s tensors (optimizer state and RNG states), or is None
    when that file is missing. Which checkpoint a run folder gives, and the fall-back past an
    unreadable newest one (with a :class:`CheckpointWarning`), are described in the module docstring.
    Raises CheckpointError naming the file and what is wrong.
    """
    candidates, notes = checkpoint_candidates(path)
    failures: list[str] = []
    for ckpt in candidates:
        try:
            loaded = _load_one(ckpt)
        except CheckpointError as err:
            failures.append(str(err))
            continue
        if failures:
            warnings.warn("skipping the newest checkpoint: " + "; ".join(notes + failures)
                          + f"; using the older checkpoint {ckpt} (step {loaded['state']['step']})",
                          CheckpointWarning, stacklevel=2)
        elif notes:
            warnings.warn("; ".join(notes) + f"; using the newest checkpoint there, {ckpt}", CheckpointWarning, stacklevel=2)
        return loaded
    more = len(failures) - 1
    tail = f"; the {more} older checkpoint{'s are' if more > 1 else ' is'} unreadable too" if more else ""
    raise CheckpointError(failures[0] + tail)
