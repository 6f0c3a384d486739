"""CVLP's queue of negatives: a ring buffer of L2-normalised keys, and how one step's keys get in.

:class:`KeyQueue` holds ``keys [Q, P]`` float32, ``valid [Q]`` bool (which slots hold a key) and
``ptr`` (the slot the next key goes to). :meth:`KeyQueue.enqueue` writes ``n`` keys at
``ptr, ptr+1, ...`` (modulo Q), overwriting the oldest, and moves ``ptr`` on by ``n``; a fresh
queue is all invalid.

One step enqueues a fixed number of slots per rank, ``batch_size × R`` (:func:`step_slots`: every
region slot of the batch, padded regions and the rows a smaller last batch lacks as invalid
slots), gathered across ranks in rank order (:func:`gather_slots`), so a queue whose size is a
multiple of ``batch_size × R × world size`` always turns over in whole steps.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..errors import InputError
from .distributed import DistInfo


class KeyQueue:
    """``KeyQueue(size Q, dim P, device)``: the ring buffer of keys (see the module docstring)."""

    def __init__(self, size: int, dim: int, device: torch.device | str = "cpu") -> None:
        if size < 1 or dim < 1:
            raise ValueError(f"a key queue needs size >= 1 and dim >= 1, got size {size}, dim {dim}")
        self.size, self.dim = int(size), int(dim)
        self.keys = torch.zeros(self.size, self.dim, device=device)
        self.valid = torch.zeros(self.size, dtype=torch.bool, device=device)
        self.ptr = 0

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, valid: torch.Tensor) -> None:
        """Write ``keys [n, P]`` with their flags ``valid [n]`` (n <= Q) from ``ptr`` on, wrapping."""
        if keys.dim() != 2 or keys.shape[1] != self.dim or valid.shape != keys.shape[:1]:
            raise InputError(f"the key queue takes keys [n, {self.dim}] and valid [n], got {tuple(keys.shape)} "
                             f"and {tuple(valid.shape)}")
        n = keys.shape[0]
        if n > self.size:
            raise InputError(f"{n} keys do not fit in a queue of {self.size}")
        idx = (self.ptr + torch.arange(n, device=self.keys.device)) % self.size
        self.keys[idx] = keys.detach().to(self.keys)
        self.valid[idx] = valid.to(device=self.valid.device, dtype=torch.bool)
        self.ptr = (self.ptr + n) % self.size

    def fill(self) -> float:
        """The share of slots holding a key."""
        return float(self.valid.float().mean())

    def state_dict(self) -> dict:
        return {"size": self.size, "dim": self.dim, "ptr": self.ptr}

    def load_state_dict(self, state: dict, where: str = "the key queue") -> None:
        if (state["size"], state["dim"]) != (self.size, self.dim):
            raise InputError(f"{where}: saved with size {state['size']} and dim {state['dim']}, but the config asks "
                             f"for size {self.size} and dim {self.dim}")
        self.ptr = int(state["ptr"])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"keys": self.keys.detach().cpu().clone(), "valid": self.valid.detach().cpu().clone()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], where: str = "the key queue") -> None:
        keys, valid = tensors["keys"], tensors["valid"]
        if keys.shape != self.keys.shape or valid.shape != self.valid.shape:
            raise InputError(f"{where}: saved keys {tuple(keys.shape)} / valid {tuple(valid.shape)}, but the queue "
                             f"holds {tuple(self.keys.shape)} / {tuple(self.valid.shape)}")
        self.keys.copy_(keys)
        self.valid.copy_(valid.bool())


def step_slots(keys: torch.Tensor, region_mask: torch.Tensor | None, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One rank's enqueue of a step: ``keys [B, R, P]`` and ``region_mask [B, R]`` (True = real;
    None: all real) → ``(keys [slots, P], valid [slots])``, row-major (row 0's regions first), padded
    regions invalid, missing rows (B·R < slots) appended as zero invalid slots."""
    b, r, p = keys.shape
    if region_mask is None:
        region_mask = torch.ones(b, r, dtype=torch.bool, device=keys.device)
    if region_mask.shape != (b, r):
        raise InputError(f"region_mask must be [B, R] = {(b, r)} like the keys, got {tuple(region_mask.shape)}")
    if b * r > slots:
        raise InputError(f"a step's keys [{b}, {r}, {p}] give {b * r} slots, more than the {slots} "
                         "(batch_size × regions) a step enqueues")
    flat, valid = keys.reshape(b * r, p), region_mask.reshape(b * r).bool()
    if b * r < slots:
        flat = torch.cat([flat, flat.new_zeros(slots - b * r, p)])
        valid = torch.cat([valid, valid.new_zeros(slots - b * r)])
    return flat, valid


def gather_slots(keys: torch.Tensor, valid: torch.Tensor, info: DistInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's ``keys [n, P]`` and ``valid [n]`` concatenated in rank order (``[W·n, P]``,
    ``[W·n]``); unchanged without torchrun. Every rank must give the same ``n``."""
    if not info.enabled:
        return keys, valid
    packed = torch.cat([keys.float(), valid.float().unsqueeze(1)], dim=1)  # gloo gathers no bool tensors
    parts = [torch.empty_like(packed) for _ in range(info.world_size)]
    dist.all_gather(parts, packed.contiguous())
    joined = torch.cat(parts)
    return joined[:, :-1].to(keys.dtype), joined[:, -1] > 0.5


__all__ = ["KeyQueue", "gather_slots", "step_slots"]
