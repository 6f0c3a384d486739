import itertools
import math

import pytest
import torch

from cotrain.detection.matcher import HungarianMatcher


def scalar_cost(logits_q, box_q, cls_j, box_j, wc=1.0, wb=5.0, wg=2.0):
    """The matching cost of one (query, target) pair written out in plain Python (the oracle)."""
    exps = [math.exp(v) for v in logits_q]
    prob = exps[cls_j] / sum(exps)
    l1 = sum(abs(a - b) for a, b in zip(box_q, box_j))

    def xyxy(b):
        return b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2

    a, b = xyxy(box_q), xyxy(box_j)
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    giou = inter / union - (hull - union) / hull
    return -wc * prob + wb * l1 - wg * giou


def brute_force(cost):
    """The least total cost over every one-to-one assignment of min(Q, n) pairs, and its pairs."""
    q, n = len(cost), len(cost[0])
    best = None
    if n <= q:
        for perm in itertools.permutations(range(q), n):  # target j → query perm[j]
            total = sum(cost[perm[j]][j] for j in range(n))
            if best is None or total < best[0]:
                best = (total, sorted((perm[j], j) for j in range(n)))
    else:
        for perm in itertools.permutations(range(n), q):  # query i → target perm[i]
            total = sum(cost[i][perm[i]] for i in range(q))
            if best is None or total < best[0]:
                best = (total, [(i, perm[i]) for i in range(q)])
    return best


def example(g, q, ns, c=3):
    logits = torch.randn(len(ns), q, c + 1, generator=g, dtype=torch.float64)
    boxes = 0.1 + 0.8 * torch.rand(len(ns), q, 4, generator=g, dtype=torch.float64)
    boxes[..., 2:] *= 0.5
    targets = [{"classes": torch.randint(0, c, (n,), generator=g),
                "boxes": torch.cat([0.2 + 0.6 * torch.rand(n, 2, generator=g, dtype=torch.float64),
                                    0.05 + 0.3 * torch.rand(n, 2, generator=g, dtype=torch.float64)], 1)}
               for n in ns]
    return logits, boxes, targets


@pytest.mark.parametrize("seed, q, ns", [(0, 4, [3, 1, 4]), (1, 3, [2, 3]), (2, 2, [3, 4]), (3, 5, [1, 2])])
def test_matching_is_the_brute_force_optimum_of_the_detr_cost(seed, q, ns):
    g = torch.Generator().manual_seed(seed)
    logits, boxes, targets = example(g, q, ns)
    matcher = HungarianMatcher()
    pairs = matcher(logits, boxes, targets)
    assert len(pairs) == len(ns)
    for i, (t, (qi, ti)) in enumerate(zip(targets, pairs)):
        cost = [[scalar_cost(logits[i, a].tolist(), boxes[i, a].tolist(), int(t["classes"][j]), t["boxes"][j].tolist())
                 for j in range(len(t["classes"]))] for a in range(q)]
        torch.testing.assert_close(matcher.cost(logits[i], boxes[i], t["classes"], t["boxes"]).double(),
                                   torch.tensor(cost, dtype=torch.float64), rtol=1e-5, atol=1e-5)
        total, best = brute_force(cost)
        assert qi.dtype == ti.dtype == torch.int64 and len(qi) == len(ti) == min(q, len(t["classes"]))
        assert sorted(zip(qi.tolist(), ti.tolist())) == best
        assert len(set(qi.tolist())) == len(qi) and len(set(ti.tolist())) == len(ti)


def test_batched_equals_one_image_at_a_time_and_empty_targets_give_empty_pairs():
    g = torch.Generator().manual_seed(5)
    logits, boxes, targets = example(g, 6, [2, 0, 5, 1])
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=1.0, cost_giou=0.5)
    batched = matcher(logits, boxes, targets)
    for i, t in enumerate(targets):
        (alone,) = matcher(logits[i : i + 1], boxes[i : i + 1], [t])
        assert torch.equal(batched[i][0], alone[0]) and torch.equal(batched[i][1], alone[1])
    q, t = batched[1]
    assert q.shape == t.shape == (0,) and q.dtype == t.dtype == torch.int64


def test_weights_change_the_matching():
    # query 0 has the target's class, query 1 its box: the weights decide
    logits = torch.tensor([[[5.0, 0.0], [0.0, 0.0]]])
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]]])
    target = [{"classes": torch.tensor([0]), "boxes": torch.tensor([[0.7, 0.7, 0.2, 0.2]])}]
    assert HungarianMatcher(1.0, 5.0, 2.0)(logits, boxes, target)[0][0].tolist() == [1]
    assert HungarianMatcher(1.0, 0.0, 0.0)(logits, boxes, target)[0][0].tolist() == [0]


def test_matching_is_not_differentiated_and_bad_inputs_are_clear_errors():
    g = torch.Generator().manual_seed(6)
    logits, boxes, targets = example(g, 3, [2])
    logits.requires_grad_(True)
    pairs = HungarianMatcher()(logits, boxes, targets)
    assert not pairs[0][0].requires_grad
    with pytest.raises(ValueError, match="2 targets"):
        HungarianMatcher()(logits, boxes, targets * 2)
    with pytest.raises(ValueError, match=r"logits \[B, Q, C\+1\] and boxes \[B, Q, 4\]"):
        HungarianMatcher()(logits, boxes[..., :3], targets)
    with pytest.raises(ValueError, match="image 0 .* non-finite"):
        HungarianMatcher()(logits.detach(), torch.full_like(boxes, float("nan")), targets)
    with pytest.raises(ValueError, match="≥ 0"):
        HungarianMatcher(cost_class=-1.0)
