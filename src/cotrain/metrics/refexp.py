"""Box overlap and referring-expression accuracy.

Boxes are ``[..., 4]`` tensors ``x0, y0, x1, y1`` (the V&L contract normalises them to [0, 1] by
the image width / height). A box with ``x1 < x0`` or ``y1 < y0`` has zero width / height. Every
IoU whose union is zero (degenerate boxes) is 0, never NaN. Inputs may be torch tensors or NumPy
arrays; the pairwise / paired functions return tensors in the inputs' floating dtype (float32 for
integer inputs), the accuracies Python floats (computed in float64).

Referring-expression accuracy (``REFEXP_VARIANTS``) of a predicted box against the referred box:

- ``"standard"``: IoU >= ``threshold`` (0.5), the usual RefCOCO / MAttNet rule;
- ``"12in1"``: the ViLBERT / 12-in-1 evaluation: boxes in pixels, IoU with the +1-pixel convention
  (``width = x1 - x0 + 1``, the same for the intersection), and a hit when IoU > ``threshold``
  STRICTLY (``select_target > 0.5`` in vilbert-multi-task); ``image_size`` converts the
  normalised boxes to pixels (pass ``image_size=1`` for boxes already in pixels);
- ``"giou"``: generalised IoU >= ``threshold``.
"""

from __future__ import annotations

import torch

REFEXP_VARIANTS = ("standard", "12in1", "giou")


def _boxes(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.float()
    if t.ndim == 0 or t.shape[-1] != 4:
        raise ValueError(f"{name} must be boxes [..., 4] (x0, y0, x1, y1), got shape {tuple(t.shape)}")
    return t


def _sides(b: torch.Tensor, plus_one: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (b[..., 2] - b[..., 0] + plus_one).clamp(min=0), (b[..., 3] - b[..., 1] + plus_one).clamp(min=0)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(num))


def _inter_union(a: torch.Tensor, b: torch.Tensor, plus_one: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas of broadcast box tensors ``[..., 4]`` -> ``[...]``."""
    wa, ha = _sides(a, plus_one)
    wb, hb = _sides(b, plus_one)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + plus_one).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + plus_one).clamp(min=0)
    inter = iw * ih  # iw <= either box's own width, so an inverted box intersects nothing
    return inter, wa * ha + wb * hb - inter


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter, union = _inter_union(a, b)
    iou = _safe_div(inter, union)
    ew = (torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])).clamp(min=0)
    eh = (torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])).clamp(min=0)
    enclosing = ew * eh
    return iou - _safe_div(enclosing - union, enclosing)  # a zero-area enclosing box: GIoU = IoU = 0


def _pair_check(a: torch.Tensor, b: torch.Tensor, paired: bool) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected boxes [N, 4] and [M, 4], got {tuple(a.shape)} and {tuple(b.shape)}")
    if paired and len(a) != len(b):
        raise ValueError(f"paired boxes must have the same length, got {len(a)} and {len(b)}")


def box_area(boxes) -> torch.Tensor:
    """Area ``[...]`` of boxes ``[..., 4]`` (zero for inverted or degenerate boxes)."""
    w, h = _sides(_boxes(boxes, "boxes"), 0.0)
    return w * h


def box_iou(a, b) -> torch.Tensor:
    """IoU of every box of ``a`` ``[N, 4]`` with every box of ``b`` ``[M, 4]`` -> ``[N, M]``."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _pair_check(a, b, paired=False)
    return _safe_div(*_inter_union(a[:, None, :], b[None, :, :]))


def paired_iou(a, b) -> torch.Tensor:
    """IoU of ``a[i]`` with ``b[i]``: ``[N, 4]``, ``[N, 4]`` -> ``[N]``."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _pair_check(a, b, paired=True)
    return _safe_div(*_inter_union(a, b))


def generalized_box_iou(a, b) -> torch.Tensor:
    """GIoU = IoU - (C - union) / C, C the smallest enclosing box's area: ``[N, 4]``, ``[M, 4]`` -> ``[N, M]``.

    In [-1, 1]; 0 (not NaN) when the enclosing box has zero area.
    """
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _pair_check(a, b, paired=False)
    return _giou(a[:, None, :], b[None, :, :])


def paired_generalized_box_iou(a, b) -> torch.Tensor:
    """GIoU of ``a[i]`` with ``b[i]``: ``[N, 4]``, ``[N, 4]`` -> ``[N]``."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _pair_check(a, b, paired=True)
    return _giou(a, b)


def _pixel_scale(image_size, n: int) -> torch.Tensor:
    """``[N, 4]`` multipliers (w, h, w, h) from an int / float, a ``(w, h)`` pair or ``[N, 2]``."""
    s = torch.as_tensor(image_size, dtype=torch.float64)
    if s.ndim == 0:
        s = s.expand(2)
    if s.shape == (2,):
        s = s.expand(n, 2)
    if s.shape != (n, 2):
        raise ValueError(f"image_size must be a number, (w, h) or [N, 2] = [{n}, 2]; got shape {tuple(s.shape)}")
    if not torch.all(s > 0):
        raise ValueError("image_size must be positive")
    return s.repeat(1, 2)


def refexp_hits(pred_boxes, target_boxes, variant: str = "standard", threshold: float = 0.5,
                image_size=None) -> torch.Tensor:
    """Per-example hit ``[N]`` bool of predicted boxes ``[N, 4]`` against referred boxes ``[N, 4]``.

    ``image_size`` is required by ``"12in1"`` (the +1-pixel IoU is not scale invariant) and
    ignored by the others (IoU and GIoU are invariant to scaling the axes).
    """
    if variant not in REFEXP_VARIANTS:
        raise ValueError(f"unknown refexp variant {variant!r}; choose one of {', '.join(REFEXP_VARIANTS)}")
    p, t = _boxes(pred_boxes, "pred_boxes").double(), _boxes(target_boxes, "target_boxes").double()
    _pair_check(p, t, paired=True)
    if variant == "standard":
        return _safe_div(*_inter_union(p, t)) >= threshold
    if variant == "giou":
        return _giou(p, t) >= threshold
    if image_size is None:
        raise ValueError("the 12in1 variant needs image_size (pixels per normalised unit; 1 for pixel boxes)")
    scale = _pixel_scale(image_size, len(p))
    return _safe_div(*_inter_union(p * scale, t * scale, plus_one=1.0)) > threshold


def refexp_accuracy(pred_boxes, target_boxes, variant: str = "standard", threshold: float = 0.5,
                    image_size=None) -> float:
    """Fraction of examples whose predicted box ``[N, 4]`` hits the referred box ``[N, 4]``.

    ``variant``: ``"standard"`` (IoU >= threshold), ``"12in1"`` (+1-pixel IoU > threshold, needs
    ``image_size``: a number, ``(w, h)`` or ``[N, 2]`` w, h) or ``"giou"`` (GIoU >= threshold).
    """
    hits = refexp_hits(pred_boxes, target_boxes, variant, threshold, image_size)
    if len(hits) == 0:
        raise ValueError("refexp accuracy of an empty set is undefined")
    return float(hits.double().mean())


def select_regions(scores, region_mask) -> torch.Tensor:
    """Index ``[N]`` of the top-scoring REAL region of each example (padding is never chosen).

    ``scores`` ``[N, R]``, ``region_mask`` ``[N, R]`` bool (True = real proposal); ties go to the
    lowest index. An example without a real region, or with a NaN score on one, is a ValueError.
    """
    s, m = torch.as_tensor(scores), torch.as_tensor(region_mask)
    if s.ndim != 2 or s.shape != m.shape:
        raise ValueError(f"scores and region_mask must both be [N, R]; got {tuple(s.shape)} and {tuple(m.shape)}")
    m = m.bool()
    if not torch.all(m.any(dim=1)):
        raise ValueError("an example has no real region (region_mask all False)")
    s = s.double()
    if torch.isnan(s[m]).any():
        raise ValueError("scores of real regions contain NaN")
    s = s.masked_fill(~m, float("-inf"))
    top = s.max(dim=1, keepdim=True).values
    return ((s == top) & m).int().argmax(dim=1)  # first maximal real region


def refexp_accuracy_from_scores(scores, boxes, region_mask, target_box, variant: str = "standard",
                                threshold: float = 0.5, image_size=None) -> float:
    """Accuracy of choosing the top-scoring real proposal: ``scores`` ``[N, R]``, ``boxes`` ``[N, R, 4]``,
    ``region_mask`` ``[N, R]``, ``target_box`` ``[N, 4]``; see :func:`refexp_accuracy` for the rest."""
    b = _boxes(boxes, "boxes")
    if b.ndim != 3:
        raise ValueError(f"boxes must be [N, R, 4], got {tuple(b.shape)}")
    idx = select_regions(scores, region_mask)
    if b.shape[:2] != torch.Size((len(idx), torch.as_tensor(scores).shape[1])):
        raise ValueError(f"boxes {tuple(b.shape)} do not match scores {tuple(torch.as_tensor(scores).shape)}")
    chosen = b[torch.arange(len(idx)), idx]
    return refexp_accuracy(chosen, target_box, variant, threshold, image_size)
