"""DETR's bipartite matching of predicted queries to target boxes (Carion et al. 2020, §3.1).

For one image with ``Q`` queries and ``n`` targets, the cost of giving target ``j`` to query ``q`` is

    cost[q, j] = − cost_class · p_q(c_j) + cost_bbox · ‖b_q − b_j‖₁ − cost_giou · GIoU(b_q, b_j)

with ``p_q`` the softmax over the ``C + 1`` logits (the last class is no-object), ``c_j`` the target
class, boxes in normalised cxcywh for the L1 term and in xyxy for GIoU. The assignment of least
total cost is solved per image by ``scipy.optimize.linear_sum_assignment`` (the Hungarian method),
under ``no_grad``: matching picks the targets, it is not differentiated.

``Q < n`` (more targets than queries) is handled, not an error: the ``Q`` targets of least total
cost get a query and the rest stay unmatched (they still count in the loss's box normaliser).
Costs must be finite — the criterion checks predictions before matching; a non-finite cost here
raises a ValueError naming the image, rather than scipy's "cost matrix is infeasible".
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from cotrain.detection.boxes import cxcywh_to_xyxy, generalized_box_iou


class HungarianMatcher:
    """``matcher(logits [B, Q, C+1], boxes [B, Q, 4], targets)`` → B pairs ``(query_idx, target_idx)``
    of int64 tensors ``[min(Q, n_i)]``, sorted by query; ``targets``: B dicts with ``classes``
    int64 ``[n_i]`` and ``boxes`` ``[n_i, 4]`` normalised cxcywh."""

    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0) -> None:
        if min(cost_class, cost_bbox, cost_giou) < 0 or cost_class == cost_bbox == cost_giou == 0:
            raise ValueError(f"matcher costs must be ≥ 0 and not all 0; got class {cost_class}, "
                             f"bbox {cost_bbox}, giou {cost_giou}")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou

    def cost(self, logits: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor,
             target_boxes: torch.Tensor) -> torch.Tensor:
        """The cost matrix ``[Q, n]`` of one image (``logits [Q, C+1]``, ``boxes [Q, 4]``)."""
        prob = logits.float().softmax(-1)
        boxes, target_boxes = boxes.float(), target_boxes.to(boxes.device).float()
        c_class = -prob[:, classes.to(logits.device).long()]
        c_bbox = torch.cdist(boxes, target_boxes, p=1)
        c_giou = -generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(target_boxes))
        return self.cost_bbox * c_bbox + self.cost_class * c_class + self.cost_giou * c_giou

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, boxes: torch.Tensor,
                 targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if logits.dim() != 3 or boxes.shape != (*logits.shape[:2], 4):
            raise ValueError(f"the matcher needs logits [B, Q, C+1] and boxes [B, Q, 4]; got "
                             f"{tuple(logits.shape)} and {tuple(boxes.shape)}")
        if len(targets) != logits.shape[0]:
            raise ValueError(f"the matcher got {logits.shape[0]} images of predictions but {len(targets)} targets")
        out = []
        for i, t in enumerate(targets):
            n = len(t["classes"])
            if n == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                out.append((empty, empty.clone()))
                continue
            cost = self.cost(logits[i], boxes[i], t["classes"], t["boxes"]).cpu()
            if not torch.isfinite(cost).all():
                raise ValueError(f"image {i} of the batch has non-finite matching costs (NaN / inf predictions "
                                 f"or target boxes); cannot match")
            rows, cols = linear_sum_assignment(cost.numpy())
            out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return out

    def __repr__(self) -> str:
        return f"HungarianMatcher(cost_class={self.cost_class}, cost_bbox={self.cost_bbox}, cost_giou={self.cost_giou})"


__all__ = ["HungarianMatcher"]
