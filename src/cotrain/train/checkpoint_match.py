"""Putting a checkpoint's tensors into the model and optimizer a config builds, with one
CheckpointError that names each tensor that does not fit, its shape in the file and in the model
(instead of ``load_state_dict``'s multi-line RuntimeError, or an optimizer that loads and fails later).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, optimizer_from_flat

MAX_LISTED = 6  # tensors named in one message; the rest are counted


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _problems(file: Path, what: str, problems: list[str]) -> CheckpointError:
    more = len(problems) - MAX_LISTED
    listed = "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
    return CheckpointError(f"{file}: {what}: {listed}")


def load_model_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], file: str | Path) -> None:
    """``model.load_state_dict(tensors)`` after checking names and shapes against ``model.state_dict()``.

    Raises CheckpointError naming, for ``file``, every tensor whose shape differs (both shapes), every
    tensor the model has and the file lacks, and every tensor the file has and the model does not.
    """
    expected = model.state_dict()
    problems = [f"{k!r} has shape {_shape(v)} in the file but {_shape(expected[k])} in the model"
                for k, v in tensors.items() if k in expected and v.shape != expected[k].shape]
    problems += [f"missing tensor {k!r} {_shape(v)}" for k, v in expected.items() if k not in tensors]
    problems += [f"unexpected tensor {k!r} {_shape(v)}" for k, v in tensors.items() if k not in expected]
    if problems:
        raise _problems(Path(file), "does not match the model the config builds", problems)
    model.load_state_dict(tensors)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    scalars: dict[str, Any],
    tensor_file: str | Path,
    state_file: str | Path,
) -> None:
    """Load an optimizer state split as :func:`~cotrain.train.checkpoint.optimizer_to_flat` writes it:
    ``tensors`` from ``tensor_file`` (``optimizer.safetensors``), ``scalars`` from ``state_file``'s
    ``optimizer`` field.

    Checks before loading: the parameter groups and their sizes (state.json), and for every parameter
    with state, that it has the same state tensors as the others and that each non-scalar one has the
    parameter's shape (AdamW's ``exp_avg`` / ``exp_avg_sq`` are shaped like the parameter).
    """
    what = "optimizer state does not match the model's parameters"
    try:
        sd = optimizer_from_flat(tensors, scalars)
        saved_sizes = [len(g["params"]) for g in sd["param_groups"]]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{state_file}: malformed optimizer state ({type(err).__name__}: {err})") from None
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if saved_sizes != sizes:
        raise CheckpointError(f"{state_file}: {what}: {len(saved_sizes)} parameter group(s) of sizes {saved_sizes} "
                              f"in the file, {len(sizes)} of sizes {sizes} in the model's optimizer")
    params = {pid: p for sg, g in zip(sd["param_groups"], optimizer.param_groups) for pid, p in zip(sg["params"], g["params"])}
    keys = set().union(*(s.keys() for s in sd["state"].values())) if sd["state"] else set()
    problems = []
    for pid, pstate in sd["state"].items():
        if pid not in params:
            problems.append(f"state for parameter {pid}, which the optimizer does not have")
            continue
        problems += [f"parameter {pid} lacks {k!r} (the others have {sorted(keys)})" for k in sorted(keys - pstate.keys())]
        problems += [f"'state.{pid}.{k}' has shape {_shape(v)} in the file but parameter {pid} has {_shape(params[pid])}"
                     for k, v in pstate.items() if torch.is_tensor(v) and v.ndim > 0 and v.shape != params[pid].shape]
    if problems:
        raise _problems(Path(tensor_file), what, problems)
    try:
        optimizer.load_state_dict(sd)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{tensor_file}: optimizer state does not load ({type(err).__name__}: {err})") from None
