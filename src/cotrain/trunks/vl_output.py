"""What a vision-and-language trunk returns, and the task token both V&L trunks insert.

The text stream enters a trunk as ``CLS, w_1..w_m`` (the text encoder's output); with a task id
the trunk makes it ``CLS, TASK_t, w_1..w_m`` (12-in-1). ``words`` always holds the states of
``w_1..w_m`` only, so it lines up with the input token ids whether or not a task token was used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from cotrain.modalities.common import trunc_normal_


@dataclass
class VLOutput:
    """Trunk states (after the final LayerNorm). Shapes without views; with ``views = K`` every
    tensor has a view dimension after the batch one (``h_img [B, K, D]``, ``regions [B, K, R, D]``…).

    ``h_img``: ``[B, D]`` the IMG (first visual) token. ``h_cls``: ``[B, D]`` the CLS token.
    ``regions``: ``[B, R, D]`` visual states without IMG. ``words``: ``[B, L, D]`` text states
    without CLS and the task token. ``region_mask`` ``[B, R]`` / ``word_mask`` ``[B, L]``: True = real.
    """

    h_img: torch.Tensor
    h_cls: torch.Tensor
    regions: torch.Tensor
    words: torch.Tensor
    region_mask: torch.Tensor
    word_mask: torch.Tensor
    views: int = 0  # 0: no view dimension

    def joint(self) -> torch.Tensor:
        """The overall image–text representation ``h_img ⊙ h_cls``: ``[B, D]`` (``[B, K, D]`` with views)."""
        return self.h_img * self.h_cls

    def regroup(self, views: int) -> "VLOutput":
        """``B·K`` trunk passes (example-major: row ``b·K + k``) → fields ``[B, K, ...]``."""
        if self.views:
            raise ValueError(f"this output already has a view dimension (K = {self.views})")
        if views < 1 or self.h_img.shape[0] % views:
            raise ValueError(f"cannot regroup {self.h_img.shape[0]} trunk passes into views of {views}")
        out = {}
        for f in fields(self):
            if f.name == "views":
                continue
            t = getattr(self, f.name)
            out[f.name] = t.reshape(t.shape[0] // views, views, *t.shape[1:])
        return VLOutput(**out, views=views)


class TaskTokens(nn.Module):
    """``nn.Embedding(num, D)``; :meth:`insert` puts ``TASK_t`` after CLS (position 1)."""

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"need at least one task token, got {num}")
        self.num = num
        self.embed = nn.Embedding(num, dim)
        trunc_normal_(self.embed.weight)

    def insert(
        self, t: torch.Tensor, t_mask: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``t [B, L, D]`` (CLS first), ``t_mask [B, L]``, ``task_ids [B]`` long → ``[B, 1+L, D]``, ``[B, 1+L]``."""
        if task_ids.shape != t.shape[:1]:
            raise ValueError(f"task_ids must be [B] = [{t.shape[0]}], got {tuple(task_ids.shape)}")
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.num):
            raise ValueError(f"task ids must lie in [0, {self.num}), got {task_ids.tolist()}")
        tok = self.embed(task_ids.long()).to(t.dtype).unsqueeze(1)
        t = torch.cat([t[:, :1], tok, t[:, 1:]], dim=1)
        t_mask = torch.cat([t_mask[:, :1], torch.ones_like(t_mask[:, :1]), t_mask[:, 1:]], dim=1)
        return t, t_mask


def prepare_text(
    t: torch.Tensor, t_mask: torch.Tensor | None, task_tokens: TaskTokens | None, task_ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Default mask, then the task token (if ``task_ids`` is given). Returns ``(t, t_mask, prefix)``
    with ``prefix`` = the number of leading non-word tokens (1: CLS; 2: CLS, TASK)."""
    t_mask = default_mask(t, t_mask)
    if task_ids is None:
        return t, t_mask, 1
    if task_tokens is None:
        raise ValueError("task_ids were given but the trunk has no task tokens (model.vl.task_tokens: none)")
    t, t_mask = task_tokens.insert(t, t_mask, task_ids)
    return t, t_mask, 2


def default_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``mask`` as bool, or all True ``[B, L]`` for ``x [B, L, D]``."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask must be [B, L] = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    return mask.bool()


def check_streams(v: torch.Tensor, t: torch.Tensor, dim: int) -> None:
    if v.dim() != 3 or t.dim() != 3 or v.shape[-1] != dim or t.shape[-1] != dim:
        raise ValueError(f"visual and text tokens must be [B, L, {dim}], got {tuple(v.shape)} and {tuple(t.shape)}")
    if v.shape[0] != t.shape[0]:
        raise ValueError(f"visual batch {v.shape[0]} differs from text batch {t.shape[0]}")


__all__ = ["TaskTokens", "VLOutput", "check_streams", "default_mask", "prepare_text"]
