"""``match_pairs`` and ``mask_regions``: the chosen shares against the binomial, the IoU > 0.4 overlap
rule on hand-made boxes, swap fills taken (by value) from real regions of other images, zero fills,
untouched rows, determinism, clear errors, and the pretraining transform list of a task config run
in order through the trainer's TransformHook."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from vl_synthetic import vl_batch

from cotrain.config import TaskConfig, TransformConfig
from cotrain.data.pretrain_masks import MaskRegions, MatchPairs, pick_other
from cotrain.data.tokenizer import WordPieceTokenizer
from cotrain.data.transforms import IGNORE, build_transforms
from cotrain.train.hooks import TransformHook


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within_binomial(hits: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    """``hits / n`` lies within ``sigmas`` binomial standard deviations of ``p``."""
    return abs(hits / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def grid_batch(b: int = 400, r: int = 8, f: int = 6, seed: int = 0, dtype=torch.float32) -> dict:
    """Regions side by side (touching, IoU 0), random features, the last slots of some rows padded,
    ``image_id`` shared by pairs of rows."""
    g = gen(seed)
    x0 = torch.arange(r, dtype=torch.float32) / r
    boxes = torch.stack([x0, torch.zeros(r), x0 + 1 / r, torch.ones(r)], -1).expand(b, r, 4).clone()
    real = torch.arange(r)[None, :] < torch.randint(1, r + 1, (b, 1), generator=g)
    return {"regions": torch.randn(b, r, f, generator=g).to(dtype), "boxes": boxes, "region_mask": real,
            "image_id": torch.arange(b) // 2, "text": torch.randint(5, 30, (b, 7), generator=g)}


# ------------------------------------------------------------------------------------ pick_other
def test_pick_other_takes_the_floor_u_n_th_eligible_column():
    eligible = torch.tensor([[False, True, False, True, True], [False] * 5, [True, False, False, False, False]])
    u = torch.tensor([[0.0, 0.34, 0.67, 0.999]] * 3)
    index, has = pick_other(eligible, u)
    assert has.tolist() == [True, False, True]
    assert index[0].tolist() == [1, 3, 4, 4]  # floor(u * 3) = 0, 1, 2, 2 → the 1st, 2nd, 3rd True
    assert index[2].tolist() == [0, 0, 0, 0]
    assert ((index >= 0) & (index < 5)).all()  # a row without a True still indexes in range
    index, has = pick_other(torch.zeros(2, 0, dtype=torch.bool), torch.rand(2, 3, generator=gen()))
    assert not has.any() and index.shape == (2, 3)


# ------------------------------------------------------------------------------------ mask_regions
@pytest.mark.parametrize("prob", [0.15, 0.4])
def test_mask_regions_chooses_a_prob_share_of_the_real_regions_and_never_padding(prob):
    batch = grid_batch()
    out = MaskRegions(prob, overlap_iou=0.4, fill="zero")(batch, gen())
    real, masked = batch["region_mask"], out["region_masked"]
    assert masked.dtype == torch.bool and masked.shape == real.shape
    assert not (masked & ~real).any()
    assert within_binomial(int(masked.sum()), int(real.sum()), prob)
    for slot in (0, 3):  # each position alike
        assert within_binomial(int(masked[:, slot][real[:, slot]].sum()), int(real[:, slot].sum()), prob)
    assert out["region_target"] is batch["regions"]
    assert torch.equal(out["regions"][masked], torch.zeros(int(masked.sum()), 6))  # zero fill
    assert torch.equal(out["regions"][~masked], batch["regions"][~masked])
    assert torch.equal(out["boxes"], batch["boxes"]) and out["text"] is batch["text"]


def overlap_batch(rows: int = 600) -> dict:
    """Every row: P, Q with IoU 0.5; S, T with IoU exactly 0.4; U, V with IoU 0.3; W, padded, on Q's
    box (IoU 0.5 with P). Boxes of different pairs touch at most (IoU 0); all coordinates are dyadic,
    so the IoUs are exact in float32."""
    boxes = torch.tensor([
        [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.25, 0.5],          # P, Q: 0.125 / 0.25
        [0.375, 0.5, 1.0, 0.75], [0.375, 0.5, 0.625, 0.75],   # S, T: 0.0625 / 0.15625
        [0.0, 0.75, 0.625, 1.0], [0.0, 0.75, 0.1875, 1.0],    # U, V: 0.046875 / 0.15625
        [0.0, 0.0, 0.25, 0.5],                                # W (padding)
    ])
    real = torch.tensor([True] * 6 + [False])
    return {"regions": torch.randn(rows, 7, 4, generator=gen(5)), "boxes": boxes.expand(rows, 7, 4).clone(),
            "region_mask": real.expand(rows, 7).clone()}


def test_the_hand_made_boxes_have_the_ious_the_overlap_tests_rely_on():
    from cotrain.detection.boxes import box_iou

    iou = box_iou(overlap_batch(1)["boxes"][0], overlap_batch(1)["boxes"][0])[0]
    assert iou[0, 1] == 0.5 and iou[0, 6] == 0.5
    assert iou[2, 3] == torch.tensor(0.4) and iou[4, 5] == pytest.approx(0.3)
    off = torch.ones(7, 7, dtype=torch.bool)
    for group in ([0, 1, 6], [2, 3], [4, 5]):
        off[np.ix_(group, group)] = False
    assert (iou[off] == 0).all()


def test_regions_overlapping_a_chosen_one_by_more_than_0_4_are_masked_too():
    batch, p = overlap_batch(), 0.3
    masked = MaskRegions(p, overlap_iou=0.4)(batch, gen(1))["region_masked"]
    n = masked.shape[0]
    assert torch.equal(masked[:, 0], masked[:, 1])  # IoU 0.5: one chosen → both masked
    assert within_binomial(int(masked[:, 0].sum()), n, 1 - (1 - p) ** 2)  # either one drawn
    for a, b in ((2, 3), (4, 5)):  # IoU exactly 0.4, and 0.3: not pulled in, each on its own
        assert within_binomial(int(masked[:, a].sum()), n, p) and within_binomial(int(masked[:, b].sum()), n, p)
        assert (masked[:, a] & ~masked[:, b]).any() and (masked[:, b] & ~masked[:, a]).any()
        assert within_binomial(int((masked[:, a] & masked[:, b]).sum()), n, p * p)
    assert not masked[:, 6].any()  # the padded slot overlapping P and Q


def test_a_lower_overlap_threshold_pulls_in_more_and_1_turns_the_rule_off():
    batch, p = overlap_batch(), 0.3
    masked = MaskRegions(p, overlap_iou=0.3)(batch, gen(2))["region_masked"]
    assert torch.equal(masked[:, 0], masked[:, 1]) and torch.equal(masked[:, 2], masked[:, 3])  # 0.4 > 0.3
    assert (masked[:, 4] != masked[:, 5]).any()  # 0.3 is not > 0.3
    batch.pop("boxes")  # not needed without the rule
    masked = MaskRegions(p, overlap_iou=1.0)(batch, gen(2))["region_masked"]
    assert (masked[:, 0] != masked[:, 1]).any()
    assert within_binomial(int(masked[:, :6].sum()), 6 * masked.shape[0], p) and not masked[:, 6].any()


def find_source(features: torch.Tensor, batch: dict) -> tuple[int, int]:
    """The (row, slot) of ``batch['regions']`` whose features equal ``features [F]`` exactly."""
    hits = (batch["regions"] == features).all(-1).nonzero().tolist()
    assert len(hits) == 1, f"features found {len(hits)} times"
    return tuple(hits[0])


@pytest.mark.parametrize("with_ids", [True, False])
def test_swap_fills_take_real_regions_of_other_images(with_ids):
    batch = grid_batch(b=40, seed=3)
    if not with_ids:
        batch.pop("image_id")
    out = MaskRegions(0.3, fill="swap")(batch, gen(4))
    masked = out["region_masked"]
    assert masked.sum() > 20
    assert torch.equal(out["regions"][~masked], batch["regions"][~masked])
    sources = set()
    for b, r in masked.nonzero().tolist():
        row, slot = find_source(out["regions"][b, r], batch)
        assert batch["region_mask"][row, slot]  # a real region ...
        assert row != b  # ... of another row
        if with_ids:
            assert batch["image_id"][row] != batch["image_id"][b]  # ... of another image
        sources.add((row, slot))
    assert len(sources) > masked.sum() // 2  # drawn, not one fixed region
    assert out["region_target"] is batch["regions"]


@pytest.mark.parametrize("padded_other", [False, True])
def test_swap_without_a_real_region_of_another_image_fills_zeros(padded_other):
    batch = grid_batch(b=6)
    batch["image_id"] = torch.zeros(6, dtype=torch.long)  # one image ...
    if padded_other:  # ... or a second one whose row has no real region (that row has sources, no masks)
        batch["image_id"][5] = 1
        batch["region_mask"][5] = False
    out = MaskRegions(0.5, fill="swap")(batch, gen())
    masked = out["region_masked"]
    assert masked.any() and torch.equal(out["regions"][masked], torch.zeros(int(masked.sum()), 6))


def test_mask_regions_keeps_the_dtype_and_is_fixed_by_the_generator():
    batch = grid_batch(b=30, dtype=torch.float16)
    t = MaskRegions(0.3, fill="swap")
    a, b, c = t(batch, gen(7)), t(batch, gen(7)), t(batch, gen(8))
    assert a["regions"].dtype == torch.float16 and a["region_target"].dtype == torch.float16
    assert torch.equal(a["regions"], b["regions"]) and torch.equal(a["region_masked"], b["region_masked"])
    assert not torch.equal(a["region_masked"], c["region_masked"])


def test_mask_regions_errors_name_what_is_wrong():
    batch = grid_batch(b=4)
    with pytest.raises(KeyError, match="region_mask"):
        MaskRegions(0.15)({k: v for k, v in batch.items() if k != "region_mask"}, gen())
    with pytest.raises(KeyError, match="boxes"):
        MaskRegions(0.15)({k: v for k, v in batch.items() if k != "boxes"}, gen())
    views = {**batch, "regions": batch["regions"][:, None].expand(4, 2, 8, 6)}
    with pytest.raises(ValueError, match=r"regions.*no view axis"):
        MaskRegions(0.15)(views, gen())
    with pytest.raises(ValueError, match="region_mask"):
        MaskRegions(0.15)({**batch, "region_mask": batch["region_mask"][:, :3]}, gen())
    with pytest.raises(ValueError, match="fill"):
        MaskRegions(0.15, fill="noise")
    with pytest.raises(ValueError, match="probability"):
        MaskRegions(1.0)


# ------------------------------------------------------------------------------------ match_pairs
def caption_batch(b: int, ids: torch.Tensor | None) -> dict:
    """Row ``i``'s text starts with ``i + 5``, so a shown caption names its source row."""
    text = torch.randint(5, 40, (b, 6), generator=gen(9))
    text[:, 0] = torch.arange(b) + 5
    text[::3, 4:] = 0
    batch = {"text": text, "regions": torch.randn(b, 3, 4, generator=gen(10))}
    if ids is not None:
        batch["image_id"] = ids
    return batch


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_match_pairs_mismatches_a_p_share_with_captions_of_other_images(p):
    b = 1200
    batch = caption_batch(b, torch.arange(b) // 3)  # three captions per image
    out = MatchPairs(p)(batch, gen(11))
    itm = out["itm_label"]
    assert itm.dtype == torch.int64 and itm.shape == (b,) and set(itm.tolist()) <= {0, 1}
    assert within_binomial(int((itm == 0).sum()), b, p)
    source = out["text"][:, 0] - 5
    matched = itm == 1
    assert torch.equal(out["text"][matched], batch["text"][matched])  # untouched
    assert torch.equal(out["text"], batch["text"][source])  # whole captions, padding included
    assert (batch["image_id"][source[~matched]] != batch["image_id"][~matched]).all()
    assert len(set(source[~matched].tolist())) > (~matched).sum() // 2  # partners drawn, not fixed
    assert out["regions"] is batch["regions"]


def test_match_pairs_without_image_ids_takes_another_row_and_without_a_partner_stays_matched():
    out = MatchPairs(0.5)(caption_batch(200, None), gen(12))
    source, itm = out["text"][:, 0] - 5, out["itm_label"]
    assert (itm == 0).any() and (source[itm == 0] != torch.arange(200)[itm == 0]).all()
    one_image = caption_batch(50, torch.full((50,), 7))
    out = MatchPairs(0.9)(one_image, gen(12))
    assert (out["itm_label"] == 1).all() and torch.equal(out["text"], one_image["text"])


def test_match_pairs_is_fixed_by_the_generator_and_names_what_is_missing():
    batch = caption_batch(60, torch.arange(60))
    a, b, c = (MatchPairs(0.5)(batch, gen(s)) for s in (1, 1, 2))
    assert torch.equal(a["text"], b["text"]) and torch.equal(a["itm_label"], b["itm_label"])
    assert not torch.equal(a["itm_label"], c["itm_label"])
    with pytest.raises(KeyError, match="text"):
        MatchPairs(0.5)({"regions": batch["regions"]}, gen())
    with pytest.raises(ValueError, match=r"text.*no view axis"):
        MatchPairs(0.5)({"text": batch["text"][:, None].expand(60, 2, 6)}, gen())
    with pytest.raises(ValueError, match="image_id"):
        MatchPairs(0.5)({**batch, "image_id": torch.zeros(60, 2, dtype=torch.long)}, gen())
    with pytest.raises(ValueError, match="probability"):
        MatchPairs(0.0)


# ------------------------------------------------------------------------------------ in a task config
WORDS = "red green blue circle square star small large left right above below the a is of".split()


def test_the_pretraining_transforms_of_a_task_config_run_in_order_through_the_hook():
    rng = np.random.default_rng(0)
    tok = WordPieceTokenizer.train([" ".join(rng.choice(WORDS, 8)) for _ in range(200)], 60)
    task = TaskConfig.model_validate({
        "name": "cap", "source": {"kind": "world", "name": "captions"},
        "transforms": [{"kind": "match_pairs"}, {"kind": "mask_text", "prob": 0.3}, {"kind": "mask_regions", "fill": "swap"}]})
    assert [t.kind for t in task.transforms] == ["match_pairs", "mask_text", "mask_regions"]
    assert isinstance(task.transforms[2], TransformConfig) and task.transforms[2].overlap_iou == 0.4
    fs = build_transforms(task.transforms, tok)
    assert [type(f).__name__ for f in fs] == ["MatchPairs", "MaskText", "MaskRegions"]
    hook = TransformHook({"cap": fs}, seed=0)
    batch = vl_batch("pretrain", b=12, length=8, vocab=tok.vocab_size)
    batch["image_id"] = torch.arange(12) // 2
    out = hook.transform(SimpleNamespace(step=3), "cap", dict(batch))
    assert torch.equal(out["text"], hook.transform(SimpleNamespace(step=3), "cap", dict(batch))["text"])
    assert out["text"].shape == batch["text"].shape and out["itm_label"].shape == (12,)
    assert out["regions"].shape == batch["regions"].shape and out["region_target"] is batch["regions"]
    assert not (out["region_masked"] & ~batch["region_mask"]).any()
    assert (out["mlm_labels"] != IGNORE).any() and (out["itm_label"] == 0).any()
    # the MLM labels refer to the caption shown: labels + unmasked words give a whole caption of the
    # batch, the row's own when matched, another image's when not
    shown = torch.where(out["mlm_labels"] != IGNORE, out["mlm_labels"], out["text"])
    for i in range(12):
        same = (batch["text"] == shown[i]).all(1).nonzero().squeeze(1).tolist()
        assert same, f"row {i}: the shown caption is no caption of the batch"
        if out["itm_label"][i] == 1:
            assert i in same
        else:
            assert all(batch["image_id"][j] != batch["image_id"][i] for j in same)
