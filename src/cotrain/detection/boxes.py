"""Box arithmetic of DETR-style detection: formats, areas, pairwise IoU and generalised IoU.

Boxes are ``[..., 4]`` tensors, either ``cxcywh`` (centre x, centre y, width, height — what the
detection head predicts and the data stores, normalised to [0, 1]) or ``xyxy`` (x0, y0, x1, y1).
Pairwise functions take ``boxes1 [N, 4]`` and ``boxes2 [M, 4]`` in ``xyxy`` and return ``[N, M]``.

Nothing here asserts on its inputs: a diverging run's NaN boxes give NaN, degenerate boxes
(zero-size, or inverted with x1 < x0) give finite values. An inverted box counts as empty (its
width / height clamp to 0), and a ratio whose denominator is 0 — two empty boxes — is 0, not
0 / 0: two identical points have IoU 0 and GIoU 0 (finite, no gradient blow-up). DETR's
``generalized_box_iou`` asserts ``(boxes[:, 2:] >= boxes[:, :2]).all()`` instead, which kills a run
whose predictions became NaN with an AssertionError rather than the trainer's non-finite-loss
error naming the task and step.
"""

from __future__ import annotations

import torch

# denominators (a union, an enclosing area) are clamped to this: it only changes a value whose
# numerator is 0 too (intersection ≤ union, enclosing − union ≤ enclosing), so results stay exact
_EPS = 1e-7


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (cx, cy, w, h) → (x0, y0, x1, y1)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (x0, y0, x1, y1) → (cx, cy, w, h)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` xyxy → areas ``[...]``; an inverted box has area 0 (not a negative one)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _iou_union_enclosing(b1: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IoU, union and enclosing-box area of broadcastable xyxy boxes ``[..., 4]``."""
    wh = (torch.minimum(b1[..., 2:], b2[..., 2:]) - torch.maximum(b1[..., :2], b2[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(b1) + box_area(b2) - inter
    wh = (torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2])).clamp(min=0)
    return inter / union.clamp(min=_EPS), union, wh[..., 0] * wh[..., 1]


def _giou(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    iou, union, enclosing = _iou_union_enclosing(b1, b2)
    return iou - (enclosing - union) / enclosing.clamp(min=_EPS)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of ``boxes1 [N, 4]`` and ``boxes2 [M, 4]`` (xyxy): two ``[N, M]``."""
    iou, union, _ = _iou_union_enclosing(boxes1[:, None], boxes2[None, :])
    return iou, union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU (Rezatofighi et al. 2019) ``[N, M]`` of xyxy boxes, in [-1, 1]:
    ``IoU − (|C| − |A ∪ B|) / |C|`` with ``C`` the smallest box enclosing both. Never raises
    (see the module docstring)."""
    return _giou(boxes1[:, None], boxes2[None, :])


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of row ``i`` of ``boxes1 [N, 4]`` with row ``i`` of ``boxes2 [N, 4]`` (xyxy):
    ``[N]`` — the diagonal of :func:`generalized_box_iou` without the ``[N, N]`` matrix."""
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"paired boxes must have one shape, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    return _giou(boxes1, boxes2)


def scale_boxes(boxes: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Normalised cxcywh ``[B, Q, 4]`` and image sizes ``[B, 2]`` = (height, width) in pixels →
    absolute xyxy ``[B, Q, 4]`` in those pixels. (``[Q, 4]`` with ``size [2]`` works too.)"""
    size = torch.as_tensor(size, device=boxes.device)
    h, w = size[..., 0].to(boxes.dtype), size[..., 1].to(boxes.dtype)
    scale = torch.stack([w, h, w, h], dim=-1)
    return cxcywh_to_xyxy(boxes) * scale.unsqueeze(-2)


__all__ = [
    "box_area", "box_iou", "cxcywh_to_xyxy", "generalized_box_iou", "paired_generalized_box_iou", "scale_boxes",
    "xyxy_to_cxcywh",
]
