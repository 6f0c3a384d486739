"""DETR's set criterion (Carion et al. 2020, §3.1), with UniT's BUTD-style attribute loss.

Predictions (the detect head's output): ``logits [L, B, Q, C+1]`` (last class = no-object),
``boxes [L, B, Q, 4]`` normalised cxcywh, optionally ``attributes [L, B, Q, A]``; L decoder layers,
the last one the final prediction. Targets: B dicts with ``classes`` int64 ``[n_i]`` in ``[0, C)``,
``boxes`` ``[n_i, 4]`` normalised cxcywh, optionally ``attributes`` int64 ``[n_i]`` (−1 = none) and
``iscrowd`` bool ``[n_i]``. Crowd targets are removed first: they are neither matched nor counted.

Per decoder layer, matched on its own (:class:`~cotrain.detection.matcher.HungarianMatcher`):

- ``ce``: cross-entropy over the ``C + 1`` classes of every query — a matched query's target is
  its target's class, an unmatched one's is no-object — with class weights 1 and ``eos_coef`` for
  no-object, averaged with those weights (``Σ w_t · CE_q / Σ w_t``, PyTorch's weighted mean, as DETR);
- ``l1``: ``Σ_matched ‖b_q − b_j‖₁ / N_boxes``;
- ``giou``: ``Σ_matched (1 − GIoU(b_q, b_j)) / N_boxes``;
- ``attr`` (with ``num_attributes`` > 0 and targets carrying ``attributes``): cross-entropy over the
  ``A`` attributes, averaged over matched queries whose target attribute is ≥ 0 (0 when none is).

``N_boxes`` is the number of (non-crowd) target boxes in the batch, summed over ranks and divided by
the world size when ``torch.distributed`` is initialised (every rank then calls one all-reduce per
loss, always, so that NaN predictions on one rank cannot leave the others waiting), clamped ≥ 1.

Returns ``ce``, ``l1``, ``giou`` (, ``attr``) for the last layer and ``ce_aux{i}``, ``l1_aux{i}``,
``giou_aux{i}`` (, ``attr_aux{i}``) for each earlier layer ``i`` (auxiliary decoding losses).
If any predicted logit, box or attribute logit is non-finite (a diverging run), every term is NaN and the matcher is
not called (scipy raises on NaN costs); the trainer then stops with its non-finite-loss error.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cotrain.detection.boxes import cxcywh_to_xyxy, paired_generalized_box_iou
from cotrain.detection.matcher import HungarianMatcher


def box_normaliser(count: int, device: torch.device | str) -> torch.Tensor:
    """``count`` target boxes of this rank → the loss normaliser: the mean count over ranks when
    ``torch.distributed`` is initialised (DETR), clamped ≥ 1; a 0-d float tensor on ``device``."""
    n = torch.tensor(float(count), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return n.clamp(min=1.0)


def term_names(layers: int, attributes: bool) -> list[str]:
    """The criterion's term names for ``layers`` decoder layers (last layer's first)."""
    base = ["ce", "l1", "giou"] + (["attr"] if attributes else [])
    return base + [f"{k}_aux{i}" for i in range(layers - 1) for k in base]


class SetCriterion(nn.Module):
    """``criterion(preds, targets) -> {term: 0-d tensor}`` (see the module docstring)."""

    def __init__(self, num_classes: int, matcher: HungarianMatcher, eos_coef: float = 0.1,
                 num_attributes: int = 0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a detection criterion needs at least one class, got {num_classes}")
        if not 0.0 <= eos_coef <= 1.0:
            raise ValueError(f"eos_coef must lie in [0, 1], got {eos_coef}")
        self.num_classes, self.matcher, self.eos_coef = num_classes, matcher, eos_coef
        self.num_attributes = num_attributes
        weight = torch.ones(num_classes + 1)
        weight[-1] = eos_coef
        self.register_buffer("class_weight", weight, persistent=False)

    def check_targets(self, targets: list[dict[str, torch.Tensor]], batch_size: int) -> None:
        """ValueError naming the image and what is wrong with its targets."""
        if len(targets) != batch_size:
            raise ValueError(f"the detection loss got {batch_size} images of predictions but {len(targets)} targets")
        for i, t in enumerate(targets):
            cls, box = t["classes"], t["boxes"]
            n = len(cls)
            if cls.dim() != 1 or box.shape != (n, 4):
                raise ValueError(f"image {i}: target classes must be [n] and boxes [n, 4]; got "
                                 f"{tuple(cls.shape)} and {tuple(box.shape)}")
            if cls.is_floating_point() or (n and (int(cls.min()) < 0 or int(cls.max()) >= self.num_classes)):
                raise ValueError(f"image {i}: target classes must be int class ids in [0, {self.num_classes}); "
                                 f"got {cls.dtype} {cls.tolist()[:8]}")
            for key in ("attributes", "iscrowd"):
                if t.get(key) is not None and t[key].shape != (n,):
                    raise ValueError(f"image {i}: target {key} must be [n] = [{n}], got {tuple(t[key].shape)}")

    @staticmethod
    def drop_crowd(targets: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """The targets without their crowd boxes (``iscrowd`` True)."""
        out = []
        for t in targets:
            crowd = t.get("iscrowd")
            if crowd is None or not bool(crowd.any()):
                out.append({k: v for k, v in t.items() if k != "iscrowd"})
            else:
                keep = ~crowd.bool()
                out.append({k: v[keep] for k, v in t.items() if k != "iscrowd"})
        return out

    def forward(self, preds: dict[str, torch.Tensor],
                targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        logits, boxes = preds["logits"], preds["boxes"]
        if logits.dim() != 4 or logits.shape[-1] != self.num_classes + 1 or boxes.shape != (*logits.shape[:3], 4):
            raise ValueError(f"the detection loss needs logits [L, B, Q, {self.num_classes + 1}] and boxes "
                             f"[L, B, Q, 4]; got {tuple(logits.shape)} and {tuple(boxes.shape)}")
        self.check_targets(targets, logits.shape[1])
        targets = self.drop_crowd(targets)
        norm = box_normaliser(sum(len(t["classes"]) for t in targets), logits.device)
        attrs = preds.get("attributes") if self.num_attributes else None
        use_attr = attrs is not None and all(t.get("attributes") is not None for t in targets)
        layers = logits.shape[0]
        if not all(bool(torch.isfinite(x).all()) for x in (logits, boxes, attrs) if x is not None):
            nan = (logits.sum() + boxes.sum()) * float("nan")
            return {k: nan for k in term_names(layers, use_attr)}
        out: dict[str, torch.Tensor] = {}
        for layer in range(layers):
            suffix = "" if layer == layers - 1 else f"_aux{layer}"
            terms = self.layer_terms(logits[layer], boxes[layer], attrs[layer] if use_attr else None, targets, norm)
            out.update({k + suffix: v for k, v in terms.items()})
        # last layer's terms first, then the auxiliary ones in layer order
        return {k: out[k] for k in term_names(layers, use_attr)}

    def layer_terms(self, logits: torch.Tensor, boxes: torch.Tensor, attrs: torch.Tensor | None,
                    targets: list[dict[str, torch.Tensor]], norm: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms of one decoder layer: ``logits [B, Q, C+1]``, ``boxes [B, Q, 4]``, ``attrs [B, Q, A]``."""
        pairs = self.matcher(logits, boxes, targets)
        device = logits.device
        img = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(pairs)]).to(device)
        query = torch.cat([q for q, _ in pairs]).to(device)
        target_cls = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=device)
        matched_cls = torch.cat([t["classes"][j.to(t["classes"].device)].to(device)
                                 for t, (_, j) in zip(targets, pairs)]).long()
        target_cls[img, query] = matched_cls
        ce = F.cross_entropy(logits.float().transpose(1, 2), target_cls, weight=self.class_weight.to(device))
        src = boxes[img, query].float()
        tgt = torch.cat([t["boxes"][j.to(t["boxes"].device)].to(device) for t, (_, j) in zip(targets, pairs)]).float()
        l1 = (src - tgt).abs().sum() / norm
        giou = (1 - paired_generalized_box_iou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(tgt))).sum() / norm
        terms = {"ce": ce, "l1": l1, "giou": giou}
        if attrs is not None:
            tgt_attr = torch.cat([t["attributes"][j.to(t["attributes"].device)].to(device)
                                  for t, (_, j) in zip(targets, pairs)]).long()
            keep = tgt_attr >= 0
            picked = attrs[img, query].float()
            if bool(keep.any()):
                terms["attr"] = F.cross_entropy(picked[keep], tgt_attr[keep])
            else:
                terms["attr"] = attrs.sum() * 0.0  # no attribute to learn here; keeps the graph
        return terms

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, eos_coef={self.eos_coef}, num_attributes={self.num_attributes}"


__all__ = ["SetCriterion", "box_normaliser", "term_names"]
