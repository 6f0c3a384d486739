"""The random state of a training process, as tensors for a checkpoint's ``optimizer.safetensors``.

Training draws random numbers from torch's generators only: dropout and drop-path use the CPU
generator for a model on the CPU and the device's CUDA generator for a model on a GPU. Batch order,
schedules and generated data use their own NumPy generators built from the seed and the
step / epoch (``np.random.default_rng((seed, ...))``), so NumPy's and Python's global generators
are not used in training and are not saved.

Keys: ``rng.torch`` (the CPU generator, a uint8 tensor) and, when CUDA is available,
``rng.cuda.<i>`` for device ``i`` (what ``torch.cuda.get_rng_state_all()`` returns).
"""

from __future__ import annotations

from pathlib import Path

import torch

TORCH_KEY = "rng.torch"
CUDA_PREFIX = "rng.cuda."


def capture_rng() -> dict[str, torch.Tensor]:
    """The CPU generator's state and, when CUDA is available, every CUDA device's (uint8 tensors on the CPU)."""
    states = {TORCH_KEY: torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"{CUDA_PREFIX}{i}"] = state.cpu()
    return states


def cuda_states(tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The ``rng.cuda.<i>`` tensors of a checkpoint, in device order."""
    found = {int(k[len(CUDA_PREFIX):]): v for k, v in tensors.items() if k.startswith(CUDA_PREFIX) and k[len(CUDA_PREFIX):].isdigit()}
    return [found[i] for i in sorted(found)]


def restore_rng(tensors: dict[str, torch.Tensor], file: str | Path) -> list[str]:
    """Set torch's generators from :func:`capture_rng`'s tensors (read from ``file``).

    Returns notes on what could not be restored exactly (empty when all was): CUDA is available
    but the checkpoint was saved without CUDA states, or with more devices than this machine has
    (the first ones are restored). A state that is not one raises CheckpointError naming the file.
    """
    from .checkpoint import CheckpointError  # checkpoint.py imports this module

    if TORCH_KEY in tensors:
        try:
            torch.set_rng_state(tensors[TORCH_KEY])
        except (RuntimeError, TypeError) as err:
            raise CheckpointError(f"{file}: {TORCH_KEY!r} is not a torch RNG state ({err})") from None
    if not torch.cuda.is_available():
        return []
    saved = cuda_states(tensors)
    if not saved:
        return [f"{file}: saved without CUDA RNG states, so random draws on the GPU (dropout, drop-path) "
                "will differ from an uninterrupted run"]
    here = torch.cuda.device_count()
    try:
        torch.cuda.set_rng_state_all(saved[:here])
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(f"{file}: the {CUDA_PREFIX}* tensors are not CUDA RNG states ({err})") from None
    if len(saved) > here:
        return [f"{file}: holds the RNG states of {len(saved)} CUDA devices, {here} here; restored the first {here}"]
    return []
