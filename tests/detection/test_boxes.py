import math

import pytest
import torch

from cotrain.detection.boxes import (
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    generalized_box_iou,
    paired_generalized_box_iou,
    scale_boxes,
    xyxy_to_cxcywh,
)


def scalar_giou(a, b):
    """An independent oracle: IoU and GIoU of two proper xyxy boxes in plain Python."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union, inter / union - (hull - union) / hull


def random_xyxy(n, g):
    lo = torch.rand(n, 2, generator=g, dtype=torch.float64)
    return torch.cat([lo, lo + 0.05 + torch.rand(n, 2, generator=g, dtype=torch.float64)], dim=1)


def test_cxcywh_xyxy_round_trips_and_hand_values():
    g = torch.Generator().manual_seed(0)
    c = torch.rand(2, 5, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(xyxy_to_cxcywh(cxcywh_to_xyxy(c)), c)
    x = random_xyxy(7, g)
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(x)), x)
    torch.testing.assert_close(cxcywh_to_xyxy(torch.tensor([0.5, 0.4, 0.2, 0.6])), torch.tensor([0.4, 0.1, 0.6, 0.7]))
    torch.testing.assert_close(xyxy_to_cxcywh(torch.tensor([1.0, 2.0, 5.0, 3.0])), torch.tensor([3.0, 2.5, 4.0, 1.0]))


def test_area_of_inverted_box_is_zero():
    assert box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 1.0, 3.0]])).tolist() == [6.0, 0.0]


@pytest.mark.parametrize("a, b, iou, giou", [
    ((0, 0, 2, 2), (0, 0, 2, 2), 1.0, 1.0),                     # identical
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7, 1 / 7 - 2 / 9),         # overlap: inter 1, union 7, hull 9
    ((0, 0, 1, 1), (2, 0, 3, 1), 0.0, -1 / 3),                  # disjoint: union 2, hull 3
    ((0, 0, 4, 4), (1, 1, 2, 2), 1 / 16, 1 / 16),               # nested: union = hull = 16
    ((0, 0, 1, 1), (1, 0, 2, 1), 0.0, 0.0),                     # touching edges: union = hull = 2
    ((0, 0, 1, 1), (1, 1, 2, 2), 0.0, -0.5),                    # touching corners: union 2, hull 4
])
def test_iou_and_giou_on_hand_worked_pairs(a, b, iou, giou):
    a, b = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    got_iou, union = box_iou(a, b)
    assert got_iou.item() == pytest.approx(iou) and generalized_box_iou(a, b).item() == pytest.approx(giou)
    assert generalized_box_iou(b, a).item() == pytest.approx(giou)
    assert union.item() == pytest.approx(box_area(a).item() + box_area(b).item() - iou * union.item())


def test_pairwise_against_scalar_oracle_symmetric_and_paired_is_diagonal():
    g = torch.Generator().manual_seed(1)
    a, b = random_xyxy(5, g), random_xyxy(3, g)
    iou, _ = box_iou(a, b)
    giou = generalized_box_iou(a, b)
    assert iou.shape == giou.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            want_iou, want_giou = scalar_giou(a[i].tolist(), b[j].tolist())
            assert iou[i, j].item() == pytest.approx(want_iou) and giou[i, j].item() == pytest.approx(want_giou)
    torch.testing.assert_close(generalized_box_iou(b, a), giou.T)
    assert (giou <= iou + 1e-12).all() and (giou >= -1).all() and (giou <= 1).all()
    torch.testing.assert_close(paired_generalized_box_iou(a[:3], b), torch.diagonal(generalized_box_iou(a[:3], b)))
    with pytest.raises(ValueError, match="one shape"):
        paired_generalized_box_iou(a, b)


def test_degenerate_boxes_give_finite_values_and_nan_gives_nan_without_raising():
    proper = torch.tensor([[0.2, 0.2, 0.6, 0.6]])
    degenerate = torch.tensor([
        [0.3, 0.3, 0.3, 0.3],   # a point inside `proper`
        [0.5, 0.1, 0.5, 0.9],   # zero width
        [0.6, 0.6, 0.2, 0.2],   # inverted (x1 < x0, y1 < y0): counts as empty
        [0.3, 0.3, 0.3, 0.3],   # the same point twice
    ])
    giou = generalized_box_iou(degenerate, torch.cat([proper, degenerate]))
    assert torch.isfinite(giou).all()
    assert giou[0, 1].item() == 0.0  # a point vs itself: IoU 0, hull 0 → 0, not 0 / 0
    assert giou[0, 0].item() == pytest.approx(0.0 - (0.16 - 0.16) / 0.16)  # inside proper: hull = proper
    iou, _ = box_iou(degenerate, degenerate)
    assert torch.isfinite(iou).all() and (iou == 0).all()
    nan = torch.tensor([[float("nan"), 0.1, 0.5, 0.5]])
    g = generalized_box_iou(torch.cat([nan, proper]), proper)
    assert math.isnan(g[0, 0].item()) and g[1, 0].item() == pytest.approx(1.0)
    # a box from a diverging head (cxcywh with NaN / inf) goes through without an exception
    wild = cxcywh_to_xyxy(torch.tensor([[float("inf"), 0.5, 0.1, 0.1], [0.5, 0.5, -0.2, 0.1]]))
    generalized_box_iou(wild, wild)


def test_scale_boxes_to_absolute_xyxy():
    boxes = torch.tensor([[[0.5, 0.25, 0.2, 0.5], [0.5, 0.5, 1.0, 1.0]]])  # [1, 2, 4]
    # (H, W) = (100, 200): x = (0.5 ∓ 0.1)·200 = 80, 120; y = (0.25 ∓ 0.25)·100 = 0, 50
    out = scale_boxes(boxes, torch.tensor([[100, 200]]))
    torch.testing.assert_close(out, torch.tensor([[[80.0, 0.0, 120.0, 50.0], [0.0, 0.0, 200.0, 100.0]]]))
    torch.testing.assert_close(scale_boxes(boxes[0], torch.tensor([100, 200])), out[0])
    two = scale_boxes(boxes.expand(2, 2, 4), torch.tensor([[100, 200], [10, 10]]))
    torch.testing.assert_close(two[1, 0], torch.tensor([4.0, 0.0, 6.0, 5.0]))
