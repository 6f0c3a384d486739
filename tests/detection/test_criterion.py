import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cotrain.detection.criterion import SetCriterion, box_normaliser, term_names
from cotrain.detection.matcher import HungarianMatcher

SRC = Path(__file__).resolve().parents[2] / "src"


def hand_example():
    """1 image, 2 queries, C = 2 classes (+ no-object), A = 2 attributes, 1 target: class 0,
    attribute 1, box (cx, cy, w, h) = (0.5, 0.5, 0.2, 0.2) → xyxy (0.4, 0.4, 0.6, 0.6), area 0.04."""
    logits = torch.tensor([[[[math.log(4.0), 0.0, 0.0],   # q0: exp = 4, 1, 1 → p = (2/3, 1/6, 1/6)
                              [0.0, 0.0, 0.0]]]])         # q1: p = (1/3, 1/3, 1/3)
    boxes = torch.tensor([[[[0.3, 0.3, 0.2, 0.2],         # q0: xyxy (0.2, 0.2, 0.4, 0.4), touches the target's corner
                             [0.5, 0.5, 0.2, 0.4]]]])     # q1: xyxy (0.4, 0.3, 0.6, 0.7), contains the target
    attributes = torch.tensor([[[[0.0, 0.0], [0.0, math.log(3.0)]]]])  # q1: p = (1/4, 3/4)
    target = {"classes": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "attributes": torch.tensor([1])}
    return {"logits": logits, "boxes": boxes, "attributes": attributes}, [target]


def test_every_term_on_a_hand_worked_example():
    preds, targets = hand_example()
    # matching costs (class 1, bbox 5, giou 2):
    #   q0: L1 = 0.2 + 0.2 = 0.4; IoU 0, union 0.08, hull (0.2..0.6)² = 0.16 → GIoU = −0.08 / 0.16 = −0.5
    #       cost = −2/3 + 5·0.4 − 2·(−0.5) = 2.333
    #   q1: L1 = |0.4 − 0.2| = 0.2; inter 0.04, union 0.08 → IoU 0.5, hull = q1's box 0.08 → GIoU 0.5
    #       cost = −1/3 + 5·0.2 − 2·0.5 = −0.333  → q1 is matched despite q0's higher class probability
    crit = SetCriterion(2, HungarianMatcher(), eos_coef=0.1, num_attributes=2)
    terms = crit(preds, targets)
    assert list(terms) == ["ce", "l1", "giou", "attr"]
    # ce: q0 → no-object (weight 0.1): −log(1/6) = log 6; q1 → class 0 (weight 1): −log(1/3) = log 3
    #     weighted mean = (0.1·log 6 + 1·log 3) / (0.1 + 1) = (0.179176 + 1.098612) / 1.1 = 1.161626
    assert terms["ce"].item() == pytest.approx((0.1 * math.log(6) + math.log(3)) / 1.1, rel=1e-6)
    assert terms["ce"].item() == pytest.approx(1.161626, abs=1e-6)
    # l1: 0.2 / 1 target box; giou: (1 − 0.5) / 1
    assert terms["l1"].item() == pytest.approx(0.2, rel=1e-6)
    assert terms["giou"].item() == pytest.approx(0.5, rel=1e-6)
    # attr: q1's attribute 1 has p = 3/4 → −log(3/4) = 0.287682
    assert terms["attr"].item() == pytest.approx(math.log(4 / 3), rel=1e-6)
    # an attribute of −1 (none) is not learned: the term is 0, still in the graph
    targets[0]["attributes"] = torch.tensor([-1])
    preds["attributes"].requires_grad_(True)
    attr = crit(preds, targets)["attr"]
    assert attr.item() == 0.0 and attr.requires_grad


def test_eos_coef_weights_only_the_no_object_class():
    preds, targets = hand_example()
    terms = SetCriterion(2, HungarianMatcher(), eos_coef=1.0)(preds, targets)
    assert "attr" not in terms  # no attribute head configured
    assert terms["ce"].item() == pytest.approx((math.log(6) + math.log(3)) / 2, rel=1e-6)


def batch_example(seed=0, layers=1, q=5):
    g = torch.Generator().manual_seed(seed)
    preds = {"logits": torch.randn(layers, 2, q, 4, generator=g),
             "boxes": 0.2 + 0.6 * torch.rand(layers, 2, q, 4, generator=g)}
    targets = [{"classes": torch.tensor([2]), "boxes": torch.tensor([[0.4, 0.6, 0.2, 0.3]])},
               {"classes": torch.tensor([0, 1, 1]),
                "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.1], [0.5, 0.5, 0.5, 0.5]])}]
    return preds, targets


def one_image(preds, i):
    return {k: v[:, i : i + 1] for k, v in preds.items()}


def test_box_terms_are_normalised_by_the_batch_box_count():
    preds, targets = batch_example()
    crit = SetCriterion(3, HungarianMatcher())
    both = crit(preds, targets)
    alone = [crit(one_image(preds, i), [t]) for i, t in enumerate(targets)]
    # each image alone is divided by its own count (1, 3); the batch by 1 + 3 = 4
    for k in ("l1", "giou"):
        assert both[k].item() == pytest.approx((alone[0][k].item() * 1 + alone[1][k].item() * 3) / 4, rel=1e-5)
    # an image without boxes adds no box loss, and a batch without any divides by 1, not 0
    empty = crit(one_image(preds, 0), [{"classes": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}])
    assert empty["l1"].item() == 0.0 and empty["giou"].item() == 0.0 and math.isfinite(empty["ce"].item())


def test_aux_terms_per_decoder_layer_are_each_layer_matched_on_its_own():
    preds, targets = batch_example(seed=3, layers=3)
    crit = SetCriterion(3, HungarianMatcher())
    terms = crit(preds, targets)
    assert list(terms) == term_names(3, False) == [
        "ce", "l1", "giou", "ce_aux0", "l1_aux0", "giou_aux0", "ce_aux1", "l1_aux1", "giou_aux1"]
    for layer, suffix in ((0, "_aux0"), (1, "_aux1"), (2, "")):
        alone = crit({k: v[layer : layer + 1] for k, v in preds.items()}, targets)
        for k in ("ce", "l1", "giou"):
            assert terms[k + suffix].item() == pytest.approx(alone[k].item(), rel=1e-6)
    assert term_names(2, True) == ["ce", "l1", "giou", "attr", "ce_aux0", "l1_aux0", "giou_aux0", "attr_aux0"]


def test_crowd_targets_are_neither_matched_nor_counted():
    preds, targets = batch_example(seed=4)
    crit = SetCriterion(3, HungarianMatcher())
    plain = crit(preds, targets)
    crowded = [dict(t) for t in targets]
    crowded[1] = {"classes": torch.tensor([0, 2, 1, 1]),
                  "boxes": torch.cat([targets[1]["boxes"][:1], torch.tensor([[0.5, 0.5, 0.9, 0.9]]), targets[1]["boxes"][1:]]),
                  "iscrowd": torch.tensor([False, True, False, False])}
    crowded[0] = {**targets[0], "iscrowd": torch.tensor([False])}
    with_crowd = crit(preds, crowded)
    for k in plain:
        assert with_crowd[k].item() == pytest.approx(plain[k].item(), rel=1e-6)
    # the crowd flag matters: counted as a normal box the terms differ
    assert crit(preds, [crowded[0], {k: v for k, v in crowded[1].items() if k != "iscrowd"}])["l1"].item() != \
        pytest.approx(plain["l1"].item())


def test_nan_predictions_give_nan_terms_without_matching():
    preds, targets = batch_example(seed=5, layers=2)
    preds["boxes"][1, 0, 2, 1] = float("nan")
    preds["logits"].requires_grad_(True)
    calls = []

    class Spy(HungarianMatcher):
        def __call__(self, *a, **k):
            calls.append(1)
            return super().__call__(*a, **k)

    terms = SetCriterion(3, Spy())(preds, targets)
    assert list(terms) == term_names(2, False) and all(math.isnan(v.item()) for v in terms.values())
    assert terms["ce"].requires_grad and not calls
    preds["boxes"][1, 0, 2, 1] = 0.5
    preds["logits"].data[0, 1, 0, 0] = float("inf")
    assert math.isnan(SetCriterion(3, Spy())(preds, targets)["l1"].item()) and not calls


def test_bad_targets_are_named():
    preds, targets = batch_example()
    crit = SetCriterion(3, HungarianMatcher())
    with pytest.raises(ValueError, match=r"image 1: target classes must be int class ids in \[0, 3\)"):
        crit(preds, [targets[0], {**targets[1], "classes": torch.tensor([0, 3, 1])}])
    with pytest.raises(ValueError, match=r"image 0: target classes must be \[n\] and boxes \[n, 4\]"):
        crit(preds, [{**targets[0], "boxes": torch.zeros(1, 3)}, targets[1]])
    with pytest.raises(ValueError, match="2 images of predictions but 1 targets"):
        crit(preds, targets[:1])
    with pytest.raises(ValueError, match=r"logits \[L, B, Q, 4\]"):
        crit({"logits": preds["logits"][0], "boxes": preds["boxes"][0]}, targets)


def test_box_normaliser_without_distributed_is_the_count_clamped():
    assert box_normaliser(3, "cpu").item() == 3.0 and box_normaliser(0, "cpu").item() == 1.0


WORKER = textwrap.dedent("""
    import sys, torch, torch.distributed as dist
    from cotrain.detection.criterion import SetCriterion
    from cotrain.detection.matcher import HungarianMatcher
    rank, store = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    n = 1 if rank == 0 else 4
    # every query sits exactly on a target but one coordinate: the summed L1 is 0.1 · n
    boxes = torch.full((n, 4), 0.3)
    preds = {"logits": torch.zeros(1, 1, 4, 3), "boxes": torch.cat([boxes, torch.full((4 - n, 4), 0.3)])[None, None]}
    tgt = boxes.clone()
    tgt[:, 0] += 0.1
    terms = SetCriterion(2, HungarianMatcher())(preds, [{"classes": torch.zeros(n, dtype=torch.int64), "boxes": tgt}])
    print(f"{terms['l1'].item():.6f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
""")


@pytest.mark.ddp
def test_box_count_is_averaged_over_ranks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(store)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    # counts 1 and 4 → normaliser (1 + 4) / 2 = 2.5 on both ranks; summed L1 = 0.1 · n
    assert [float(o[0]) for o in outs] == pytest.approx([0.1 / 2.5, 0.4 / 2.5], rel=1e-5)
