import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cotrain.config import ConfigError, HeadConfig
from cotrain.data.arrays import Split
from cotrain.data.ragged import Ragged
from cotrain.heads import HEADS, build_head, default_metric
from cotrain.heads.detect import DetectHead
from cotrain.trunks.output import TrunkOutput

D, B, Q, L, C = 16, 2, 5, 3, 4


def trunk_out(decoder, b=B):
    return TrunkOutput({"image": torch.randn(b, 3, D)}, {"image": torch.ones(b, 3, dtype=torch.bool)}, decoder=decoder)


def detection_batch():
    """Two images in the data layout (Ragged targets), gathered by ``Split.take`` like the trainer."""
    split = Split({
        "target_boxes": Ragged.from_rows([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]], [[0.5, 0.5, 0.4, 0.2]]],
                                         dtype=np.float32, row_shape=(4,)),
        "target_classes": Ragged.from_rows([[1, 3], [0]], dtype=np.int64),
        "target_attributes": Ragged.from_rows([[2, -1], [0]], dtype=np.int64),
        "target_iscrowd": Ragged.from_rows([[False, False], [False]], dtype=bool),
        "orig_size": np.array([[100, 200], [60, 80]], dtype=np.int64),
        "image_id": np.array([7, 9], dtype=np.int64),
    })
    return split.take(np.arange(2))


def test_table_config_and_class_attributes():
    assert HEADS["detect"] is DetectHead and default_metric("detect") == "detection"
    head = build_head(HeadConfig(type="detect"), D, C)
    assert (head.kind, head.metric, head.uses_classes, head.needs) == ("detect", "detection", True, "image")
    assert head.loss_weights == {"ce": 1.0, "l1": 5.0, "giou": 2.0, "attr": 1.0}
    m = head.criterion.matcher
    assert (m.cost_class, m.cost_bbox, m.cost_giou, head.criterion.eos_coef) == (1.0, 5.0, 2.0, 0.1)
    cfg = HeadConfig(type="detect", match_cost_class=2.0, match_cost_bbox=1.0, match_cost_giou=0.0, eos_coef=0.3,
                     num_attributes=6, loss_weights={"l1": 2.0})
    head = build_head(cfg, D, C)
    m = head.criterion.matcher
    assert (m.cost_class, m.cost_bbox, m.cost_giou, head.criterion.eos_coef) == (2.0, 1.0, 0.0, 0.3)
    assert head.loss_weights["l1"] == 2.0 and head.attr_embed[-1].out_features == 6
    assert head.class_embed.out_features == C + 1 and [type(x).__name__ for x in head.box_embed] == [
        "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    with pytest.raises(ConfigError, match="all 0"):
        build_head(HeadConfig(type="detect", match_cost_class=0, match_cost_bbox=0, match_cost_giou=0), D, C)
    with pytest.raises(ConfigError, match="bce"):
        build_head(HeadConfig(type="detect", loss_weights={"bce": 1.0}), D, C)
    with pytest.raises(ValidationError):
        HeadConfig(type="detect", eos_coef=1.5)
    with pytest.raises(ValidationError):
        HeadConfig(type="detect", num_attributes=-1)


def test_forward_shapes_shared_across_layers_and_attribute_head_reads_the_predicted_class():
    torch.manual_seed(0)
    head = build_head(HeadConfig(type="detect", num_attributes=6), D, C)
    dec = torch.randn(L, B, Q, D)
    preds = head(trunk_out(dec))
    assert preds["logits"].shape == (L, B, Q, C + 1) and preds["boxes"].shape == (L, B, Q, 4)
    assert preds["attributes"].shape == (L, B, Q, 6)
    assert ((preds["boxes"] > 0) & (preds["boxes"] < 1)).all()
    # the same weights on every layer: layer 1 alone gives layer 1's predictions
    alone = head(trunk_out(dec[1:2]))
    torch.testing.assert_close(alone["logits"][0], preds["logits"][1])
    torch.testing.assert_close(alone["boxes"][0], preds["boxes"][1])
    cls = preds["logits"][..., :C].argmax(-1)
    want = head.attr_embed(torch.cat([dec, head.attr_class(cls)], -1))
    torch.testing.assert_close(preds["attributes"], want)
    assert "attributes" not in build_head(HeadConfig(type="detect"), D, C)(trunk_out(dec))


def test_forward_without_decoder_states_names_the_trunk_to_use():
    head = build_head(HeadConfig(type="detect"), D, C)
    with pytest.raises(ConfigError, match="model.trunk: encoder_decoder"):
        head(trunk_out(None))


def test_losses_from_a_data_batch_and_aux_terms_weighted_like_their_base():
    torch.manual_seed(1)
    head = build_head(HeadConfig(type="detect", num_attributes=3, loss_weights={"giou": 3.0}), D, C)
    batch = detection_batch()
    assert isinstance(batch["target_boxes"], list) and len(batch["target_boxes"]) == B
    preds = head(trunk_out(torch.randn(L, B, Q, D)))
    terms = head.losses(preds, batch)
    assert list(terms) == ["ce", "l1", "giou", "attr"] + [f"{k}_aux{i}" for i in range(L - 1) for k in ("ce", "l1", "giou", "attr")]
    assert all(torch.isfinite(v) and v.requires_grad for v in terms.values())
    w = {"ce": 1.0, "l1": 5.0, "giou": 3.0, "attr": 1.0}
    want = sum(w[k.split("_aux")[0]] * v for k, v in terms.items())
    torch.testing.assert_close(head.weighted_total(terms), want)
    # by hand on given terms: 1·1 + 5·2 + 3·3 + aux (1·10 + 5·20) = 130
    fixed = {"ce": torch.tensor(1.0), "l1": torch.tensor(2.0), "giou": torch.tensor(3.0),
             "ce_aux0": torch.tensor(10.0), "l1_aux0": torch.tensor(20.0)}
    assert head.weighted_total(fixed).item() == 130.0
    with pytest.raises(KeyError, match="target_classes"):
        head.losses(preds, {"target_boxes": batch["target_boxes"]})


def test_nan_predictions_give_nan_losses_and_degenerate_targets_finite_ones():
    torch.manual_seed(2)
    head = build_head(HeadConfig(type="detect"), D, C)
    batch = detection_batch()
    dec = torch.randn(L, B, Q, D)
    dec[0, 1, 2] = float("nan")  # one diverged query state in one layer
    terms = head.losses(head(trunk_out(dec)), batch)
    assert all(math.isnan(v.item()) for v in terms.values())
    assert not torch.isfinite(head.weighted_total(terms))  # what the trainer's check sees
    batch["target_boxes"] = [torch.tensor([[0.3, 0.3, 0.0, 0.0], [0.5, 0.5, 0.0, 0.3]]),  # zero-size boxes
                             torch.tensor([[0.5, 0.5, -0.2, -0.1]])]                        # inverted box
    terms = head.losses(head(trunk_out(torch.randn(L, B, Q, D))), batch)
    assert all(torch.isfinite(v) for v in terms.values())
    head.weighted_total(terms).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_gradient_steps_on_the_head_alone_fits_a_fixed_batch():
    torch.manual_seed(3)
    head = build_head(HeadConfig(type="detect", num_attributes=3), D, C)
    dec = torch.randn(2, B, Q, D)
    batch = detection_batch()
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        total = head.weighted_total(head.losses(head(trunk_out(dec)), batch))
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.3 * losses[0], losses
    # the fitted head puts the first image's class-1 object where it is
    with torch.no_grad():
        p = head.predict(head(trunk_out(dec)))
    best = p["probs"][0, :, 1].argmax()
    assert p["probs"][0, best, 1] > 0.5
    torch.testing.assert_close(p["boxes"][0, best], batch["target_boxes"][0][0], atol=0.05, rtol=0)


def hand_preds():
    """One layer, B = 1, Q = 2, C = 2: q0 logits (log 1, log 6, log 3) → p = (0.1, 0.6, 0.3);
    q1 logits (log 2, log 1, log 7) → p = (0.2, 0.1, 0.7) — mostly no-object, best real class 0."""
    logits = torch.log(torch.tensor([[[[1.0, 6.0, 3.0], [2.0, 1.0, 7.0]]]]))
    boxes = torch.tensor([[[[0.5, 0.25, 0.2, 0.5], [0.25, 0.75, 0.5, 0.5]]]])
    return {"logits": logits, "boxes": boxes}


def test_predict_and_postprocess_to_absolute_boxes_of_the_original_size():
    head = build_head(HeadConfig(type="detect"), D, 2)
    p = head.predict(hand_preds())
    torch.testing.assert_close(p["probs"], torch.tensor([[[0.1, 0.6], [0.2, 0.1]]]))
    (r,) = head.postprocess(hand_preds(), torch.tensor([[100, 200]]))  # (H, W)
    # q0: x = (0.5 ∓ 0.1)·200 = 80, 120; y = (0.25 ∓ 0.25)·100 = 0, 50
    # q1: x = (0.25 ∓ 0.25)·200 = 0, 100; y = (0.75 ∓ 0.25)·100 = 50, 100
    torch.testing.assert_close(r["boxes"], torch.tensor([[80.0, 0.0, 120.0, 50.0], [0.0, 50.0, 100.0, 100.0]]))
    torch.testing.assert_close(r["scores"], torch.tensor([0.6, 0.2]))
    assert r["labels"].tolist() == [1, 0]  # no-object never wins, every query kept
    (again,) = head.postprocess(p, torch.tensor([[100, 200]]))  # predict's output works too
    torch.testing.assert_close(again["boxes"], r["boxes"])


def test_results_sorted_thresholded_and_sized():
    head = build_head(HeadConfig(type="detect"), D, 2)
    p = head.predict(hand_preds())
    (res,) = head.results(p, {"orig_size": torch.tensor([[100, 200]])}, ["cat", "dog"], 1)
    # only q0 scores above 0.5; top_k = 1 asks for no more
    assert res == {"objects": [{"label": "dog", "score": pytest.approx(0.6), "box": [80.0, 0.0, 120.0, 50.0]}]}
    (res,) = head.results(p, {"orig_size": torch.tensor([[100, 200]])}, ["cat", "dog"], 5)
    assert [o["label"] for o in res["objects"]] == ["dog", "cat"]  # at least top_k (here all Q = 2), by score
    # without orig_size, the image tensor's (H, W) = (10, 20)
    (res,) = head.results(p, {"image": torch.zeros(1, 3, 10, 20, dtype=torch.uint8)}, [], 1)
    assert res["objects"][0]["box"] == [8.0, 0.0, 12.0, 5.0] and res["objects"][0]["label"] == 1


def test_results_carry_attributes():
    torch.manual_seed(4)
    head = build_head(HeadConfig(type="detect", num_attributes=3), D, C)
    preds = head(trunk_out(torch.randn(1, B, Q, D)))
    p = head.predict(preds)
    assert p["attributes"].shape == (B, Q, 3)
    torch.testing.assert_close(p["attributes"].sum(-1), torch.ones(B, Q))
    post = head.postprocess(preds, torch.tensor([[10, 10], [10, 10]]))
    assert post[0]["attributes"].tolist() == p["attributes"][0].argmax(-1).tolist()
    head.attribute_names = ["red", "green", "blue"]
    res = head.results(p, detection_batch(), ["a", "b", "c", "d"], Q)
    assert len(res) == B and len(res[0]["objects"]) == Q
    scores = [o["score"] for o in res[0]["objects"]]
    assert scores == sorted(scores, reverse=True)
    assert all(o["attribute"] in head.attribute_names for r in res for o in r["objects"])
