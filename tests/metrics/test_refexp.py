import numpy as np
import pytest
import torch
from torch.testing import assert_close

from cotrain.metrics.refexp import (
    box_area,
    box_iou,
    generalized_box_iou,
    paired_generalized_box_iou,
    paired_iou,
    refexp_accuracy,
    refexp_accuracy_from_scores,
    refexp_hits,
    select_regions,
)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_box_area():
    assert_close(box_area(t([[0, 0, 2, 3], [2, 0, 0, 3], [1, 1, 1, 5]])), t([6, 0, 0]))  # inverted, zero-width
    assert box_area(t([[[0, 0, 1, 1]]])).shape == (1, 1)  # any leading shape
    assert box_area(np.array([0, 0, 2, 2])).item() == 4  # NumPy, int -> float


def test_iou_and_giou_by_hand():
    a = t([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 4, 4]])
    b = t([[1, 1, 3, 3], [2, 0, 3, 1], [0, 0, 4, 4]])
    # [0,0,2,2] vs [1,1,3,3]: inter 1, union 4 + 4 - 1 = 7 -> 1/7; enclosing [0,0,3,3] = 9
    #   -> GIoU = 1/7 - (9 - 7)/9 = (9 - 14)/63 = -5/63
    # [0,0,1,1] vs [2,0,3,1]: disjoint -> IoU 0; enclosing [0,0,3,1] = 3, union 2 -> GIoU = -1/3
    # identical -> 1, 1
    assert_close(paired_iou(a, b), t([1 / 7, 0, 1]))
    assert_close(paired_generalized_box_iou(a, b), t([-5 / 63, -1 / 3, 1]))
    full = box_iou(a, b)
    assert full.shape == (3, 3)
    assert_close(torch.diagonal(full), paired_iou(a, b))
    # off-diagonal: [0,0,2,2] vs [0,0,4,4] nested: 4/16; [0,0,4,4] vs [1,1,3,3]: 4/16
    assert_close(full[0, 2], t(0.25))
    assert_close(full[2, 0], t(0.25))
    g = generalized_box_iou(a, b)
    assert_close(torch.diagonal(g), paired_generalized_box_iou(a, b))
    assert_close(g[0, 2], t(0.25))  # nested: the enclosing box is the union, GIoU = IoU


def test_degenerate_boxes_give_zero_not_nan():
    point = t([[0.5, 0.5, 0.5, 0.5]])
    line = t([[0, 0, 1, 0]])
    unit = t([[0, 0, 1, 1]])
    for a, b in ((point, point), (line, unit), (point, unit), (line, line)):
        for fn in (paired_iou, paired_generalized_box_iou, box_iou, generalized_box_iou):
            v = fn(a, b)
            assert not torch.isnan(v).any(), fn.__name__
    assert paired_iou(point, point).item() == 0 and paired_generalized_box_iou(point, point).item() == 0
    assert paired_iou(line, unit).item() == 0
    # line [0,0,1,0] vs unit: union 1, enclosing 1 -> GIoU = 0 - 0/1 = 0
    assert paired_generalized_box_iou(line, unit).item() == 0
    assert refexp_accuracy(point, point) == 0.0


def test_variants_disagree():
    # image_size per example (w, h); boxes normalised
    # E0, 100 x 100 px: target [0,0,20,20], pred [3,4,23,24]
    #   standard: inter 17*16 = 272, union 400 + 400 - 272 = 528 -> 17/33 = 0.515 >= 0.5  hit
    #   giou: enclosing [0,0,23,24] = 552 -> 17/33 - 24/552 = 17/33 - 1/23 = 358/759 = 0.472  miss
    #   12in1: sides 21 x 21 each, inter 18 x 17 = 306, union 882 - 306 = 576 -> 0.531 > 0.5  hit
    # E1, 10 x 10 px: target [0,0,4,4], pred [0,0,1.9,4] (nested)
    #   standard: 7.6 / 16 = 0.475  miss; giou = IoU (nested) = 0.475  miss
    #   12in1: (2.9 * 5) / (5 * 5) = 0.58  hit
    pred = t([[0.03, 0.04, 0.23, 0.24], [0.0, 0.0, 0.19, 0.4]])
    target = t([[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.4, 0.4]])
    size = [[100, 100], [10, 10]]
    assert refexp_hits(pred, target, "standard").tolist() == [True, False]
    assert refexp_hits(pred, target, "giou").tolist() == [False, False]
    assert refexp_hits(pred, target, "12in1", image_size=size).tolist() == [True, True]
    assert refexp_accuracy(pred, target) == 0.5
    assert refexp_accuracy(pred, target, "giou") == 0.0
    assert refexp_accuracy(pred, target, "12in1", image_size=size) == 1.0
    assert paired_generalized_box_iou(pred * 100, target * 100)[0].item() == pytest.approx(358 / 759)
    # the +1-pixel IoU is not scale invariant: E1 at 1000 px -> (191 * 401) / (401 * 401) = 0.476
    assert refexp_hits(pred, target, "12in1", image_size=1000).tolist() == [True, False]
    # the standard and giou results do not depend on image_size
    assert refexp_accuracy(pred, target, image_size=size) == 0.5


def test_thresholds_strict_and_inclusive():
    # standard / giou use >=: nested [0,0,1,1] in [0,0,2,1] -> IoU = GIoU = 1/2 exactly: hit
    assert refexp_accuracy(t([[0, 0, 1, 1]]), t([[0, 0, 2, 1]])) == 1.0
    assert refexp_accuracy(t([[0, 0, 1, 1]]), t([[0, 0, 2, 1]]), "giou") == 1.0
    # 12in1 uses >: pixel boxes [0,0,5,9] and [2,0,7,9]: sides 6 x 10 each, inter (5-2+1) x 10 = 40,
    #   union 120 - 40 = 80 -> exactly 0.5: miss; a lower threshold makes it a hit
    pred, target = t([[2, 0, 7, 9]]), t([[0, 0, 5, 9]])
    assert refexp_accuracy(pred, target, "12in1", image_size=1) == 0.0
    assert refexp_accuracy(pred, target, "12in1", image_size=1, threshold=0.49) == 1.0


def test_12in1_non_square_image():
    pred = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 0.3, 0.3]])
    target = np.array([[0.15, 0.2, 0.55, 0.7], [0.05, 0.0, 0.35, 0.35]])
    scale = np.array([200.0, 100.0, 200.0, 100.0])  # (w, h) = (200, 100)
    want = refexp_hits(pred * scale, target * scale, "12in1", image_size=1)
    assert torch.equal(refexp_hits(pred, target, "12in1", image_size=(200, 100)), want)
    assert torch.equal(refexp_hits(pred, target, "12in1", image_size=[[200, 100], [200, 100]]), want)
    # w, h order: pred [0,0,.4,1] in target [0,0,1,1] (nested; standard IoU 0.4, a miss)
    #   (w, h) = (2, 10): pixels [0,0,.8,10] in [0,0,2,10] -> (1.8 * 11) / (3 * 11) = 0.6    hit
    #   (w, h) = (10, 2): pixels [0,0,4,2] in [0,0,10,2]   -> (5 * 3) / (11 * 3)    = 0.4545 miss
    pred, target = t([[0, 0, 0.4, 1]]), t([[0, 0, 1, 1]])
    assert refexp_accuracy(pred, target, "12in1", image_size=(2, 10)) == 1.0
    assert refexp_accuracy(pred, target, "12in1", image_size=(10, 2)) == 0.0
    assert refexp_accuracy(pred, target) == 0.0


def test_from_scores_picks_top_real_region():
    target = t([[0, 0, 1, 1], [0, 0, 1, 1]])
    far = [0.0, 0.0, 0.1, 0.1]
    boxes = t([[far, target[0].tolist(), far], [far, target[1].tolist(), far]])
    scores = t([[1.0, 5.0, 9.0], [2.0, 2.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # row 0: padding (index 2) has the top score but is never chosen -> region 1 (the right box)
    # row 1: regions 0 and 1 tie -> the first (a far box): miss
    assert select_regions(scores, mask).tolist() == [1, 0]
    assert refexp_accuracy_from_scores(scores, boxes, mask, target) == 0.5
    assert refexp_accuracy_from_scores(scores.numpy(), boxes.numpy(), mask.numpy(), target.numpy()) == 0.5
    with pytest.raises(ValueError, match="no real region"):
        select_regions(scores, torch.tensor([[False] * 3, [True] * 3]))
    with pytest.raises(ValueError, match="NaN"):
        select_regions(t([[float("nan"), 1.0, 0.0], [1.0, 0.0, 0.0]]), mask)
    # NaN on padding is fine
    assert select_regions(t([[0.0, 1.0, float("nan")], [1.0, 0.0, 0.0]]), mask).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"\[N, R, 4\]"):
        refexp_accuracy_from_scores(scores, boxes[0], mask, target)


def test_errors():
    box = t([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="standard, 12in1, giou"):
        refexp_accuracy(box, box, "iou")
    with pytest.raises(ValueError, match="image_size"):
        refexp_accuracy(box, box, "12in1")
    with pytest.raises(ValueError, match="image_size"):
        refexp_accuracy(box, box, "12in1", image_size=[[1, 1], [1, 1]])
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        paired_iou(t([[0, 0, 1]]), box)
    with pytest.raises(ValueError, match="same length"):
        paired_iou(box, t([[0, 0, 1, 1], [0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="empty"):
        refexp_accuracy(t(np.zeros((0, 4))), t(np.zeros((0, 4))))
