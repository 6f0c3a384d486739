"""What every modality encoder shares: a class token, a learned positional embedding over a token
grid, and resampling of that embedding when the input size differs from the configured one.

An encoder maps one raw input to ``(tokens [B, 1+N, D], mask [B, 1+N] bool or None)``; token 0 is
the encoder's own class token, ``mask`` is True for real tokens (None: all tokens are real).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.trunks.layers import trunc_normal_  # noqa: F401  (encoders import it from here)

# interpolation used for a grid of 1, 2 or 3 dimensions
_MODES = {1: "linear", 2: "bicubic", 3: "trilinear"}


def resample_pos_embed(
    pe: torch.Tensor,
    old_grid: tuple[int, ...],
    new_grid: tuple[int, ...],
    *,
    num_prefix: int = 1,
    mode: str | None = None,
) -> torch.Tensor:
    """Resample a positional embedding laid out on a token grid.

    ``pe``: ``[1, num_prefix + prod(old_grid), D]`` (or without the leading 1); the first
    ``num_prefix`` positions (the class token) are kept as they are, the rest is reshaped to
    ``old_grid``, interpolated to ``new_grid`` with ``F.interpolate`` (``align_corners=False``;
    linear / bicubic / trilinear for 1-, 2-, 3-D grids unless ``mode`` is given) and flattened back
    in row-major order. Same grid in and out returns ``pe`` itself. Usable on a checkpoint tensor
    to load it at another resolution.
    """
    old_grid = tuple(int(g) for g in old_grid)
    new_grid = tuple(int(g) for g in new_grid)
    if len(old_grid) != len(new_grid):
        raise ValueError(f"cannot resample a {len(old_grid)}-D grid {old_grid} to a {len(new_grid)}-D grid {new_grid}")
    squeeze = pe.dim() == 2
    if squeeze:
        pe = pe.unsqueeze(0)
    if pe.dim() != 3 or pe.shape[1] != num_prefix + math.prod(old_grid):
        raise ValueError(
            f"positional embedding of shape {tuple(pe.shape)} does not hold {num_prefix} prefix + "
            f"{math.prod(old_grid)} grid positions (grid {old_grid})"
        )
    if old_grid == new_grid:
        return pe.squeeze(0) if squeeze else pe
    if mode is None:
        if len(old_grid) not in _MODES:
            raise ValueError(f"no default interpolation for a {len(old_grid)}-D grid; pass mode=")
        mode = _MODES[len(old_grid)]
    n, _, dim = pe.shape
    prefix, grid = pe[:, :num_prefix], pe[:, num_prefix:]
    grid = grid.reshape(n, *old_grid, dim).movedim(-1, 1)  # [n, D, *old_grid]
    grid = F.interpolate(grid, size=new_grid, mode=mode, align_corners=False)
    grid = grid.movedim(1, -1).reshape(n, math.prod(new_grid), dim)
    out = torch.cat([prefix, grid], dim=1)
    return out.squeeze(0) if squeeze else out


def normalise_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] → float /255; then (x - 0.5) / 0.5. Float input is taken to be in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0).sub_(0.5).div_(0.5)
    if not x.is_floating_point():
        raise TypeError(f"pixel input must be uint8 or floating point, got {x.dtype}")
    return (x - 0.5) / 0.5


class TokenEncoder(nn.Module):
    """Base class: owns the class token and the positional embedding over ``grid``.

    Subclasses turn their input into grid tokens ``[B, N, D]`` (row-major over the grid) and call
    :meth:`add_cls_and_pos`.
    """

    def __init__(self, dim: int, grid: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.grid = tuple(int(g) for g in grid)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + math.prod(self.grid), dim))
        trunc_normal_(self.cls_token)
        trunc_normal_(self.pos_embed)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def num_tokens(self) -> int:
        """Tokens (class token included) at the configured input size."""
        return self.pos_embed.shape[1]

    def pos_embed_for(self, grid: tuple[int, ...]) -> torch.Tensor:
        """``[1, 1 + prod(grid), D]``: the embedding itself, or resampled to ``grid``."""
        if grid == self.grid:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, self.grid, grid)

    def add_cls_and_pos(self, x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """``x [B, N, D]`` on ``grid`` → ``[B, 1+N, D]`` with class token first and positions added."""
        pe = self.pos_embed_for(grid)
        cls = (self.cls_token + pe[:, :1]).expand(x.shape[0], -1, -1)
        return self.drop(torch.cat([cls, x + pe[:, 1:]], dim=1))


def check_divisible(what: str, size: int, patch: int, key: str) -> None:
    if size % patch:
        raise ValueError(f"{what} {size} is not a multiple of the patch size {patch} ({key})")
