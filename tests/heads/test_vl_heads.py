import math

import pytest
import torch
import torch.nn.functional as F

from cotrain.config import ConfigError, HeadConfig
from cotrain.heads.refexp import RefExpHead
from cotrain.heads.retrieval import RetrievalHead, info_nce
from cotrain.heads.verify import NLVRHead, SNLIVEHead
from cotrain.heads.vqa import VQAHead
from cotrain.trunks.output import TrunkOutput

pytestmark = pytest.mark.usefixtures("one_thread")

D, B, R, L = 16, 4, 5, 6


class VLOut(TrunkOutput):
    """A trunk output of a regions + text task, with 12-in-1's names for its parts."""

    h_img = property(lambda self: self.pooled("regions"))
    h_cls = property(lambda self: self.pooled("text"))
    region_mask = property(lambda self: self.tokens("regions")[1])


def vl_out(h_img, h_cls, regions, words, region_mask, word_mask, views=0) -> VLOut:
    cat = lambda first, rest: torch.cat([first.unsqueeze(-2), rest], dim=-2)  # noqa: E731
    ones = torch.ones(region_mask.shape[:-1] + (1,), dtype=torch.bool)
    return VLOut({"regions": cat(h_img, regions), "text": cat(h_cls, words)},
                 {"regions": torch.cat([ones, region_mask], -1), "text": torch.cat([ones, word_mask], -1)}, views)


def out(b=B, seed=0, views=0):
    g = torch.Generator().manual_seed(seed)
    n = b * views if views else b
    region_mask = torch.ones(n, R, dtype=torch.bool)
    region_mask[0, 3:] = False
    region_mask[n - 1, 1:] = False
    o = vl_out(torch.randn(n, D, generator=g), torch.randn(n, D, generator=g), torch.randn(n, R, D, generator=g),
               torch.randn(n, L, D, generator=g), region_mask, torch.ones(n, L, dtype=torch.bool))
    if not views:
        return o
    g = o.regroup(views)
    return VLOut(g.states, g.masks, g.views)


def test_regroup_is_example_major():
    flat = out(b=6)
    grouped = flat.regroup(3)
    assert grouped.views == 3 and grouped.pooled("regions").shape == (2, 3, D)
    assert grouped.tokens("regions")[0].shape == (2, 3, R, D)
    torch.testing.assert_close(grouped.pooled("text")[1, 2], flat.h_cls[5])
    torch.testing.assert_close(grouped.joint(), (flat.h_img * flat.h_cls).view(2, 3, D))
    with pytest.raises(ValueError, match="cannot regroup"):
        flat.regroup(4)


def test_vqa_head_mlp_on_joint_and_loss_scaled_by_answers():
    torch.manual_seed(0)
    head = VQAHead(HeadConfig(), D, 7).eval()
    o = out()
    logits = head(o)
    assert logits.shape == (B, 7)
    mlp = head.classifier.mlp
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "LayerNorm", "Linear"]
    assert mlp[0].out_features == 2 * D
    torch.testing.assert_close(logits, mlp(o.h_img * o.h_cls))
    target = torch.rand(B, 7).round() * 0.6
    loss = head.losses(logits, {"label": target})
    want = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / B
    torch.testing.assert_close(loss["bce"], want)
    torch.testing.assert_close(head.predict(logits), logits.sigmoid())
    with pytest.raises(ValueError, match="soft scores"):
        head.losses(logits, {"label": torch.zeros(B, dtype=torch.long)})
    with pytest.raises(KeyError, match="label"):
        head.losses(logits, {})


def test_retrieval_head_scores_views_and_multiple_choice_loss():
    torch.manual_seed(0)
    head = RetrievalHead(HeadConfig(), D).eval()
    o4 = out(views=4)
    scores = head(o4)
    assert scores.shape == (B, 4)
    torch.testing.assert_close(scores, head.score(o4.h_img * o4.h_cls).squeeze(-1))
    label = torch.tensor([0, 1, 3, 0])
    assert head.losses(scores, {"label": label}).keys() == {"mc"}  # multiple_choice: the default
    torch.testing.assert_close(head.losses(scores, {"label": label})["mc"], F.cross_entropy(scores, label))
    single = head(out())
    assert single.shape == (B,)
    with pytest.raises(ValueError, match="view axis"):
        head.losses(single, {"label": torch.zeros(B, dtype=torch.long)})
    with pytest.raises(TypeError, match="int64"):
        head.losses(scores, {"label": torch.zeros(B)})


def test_info_nce_against_a_hand_computed_value():
    """text (1, 0), (0, 2); images (3, 0), (1, 1): cosines [[1, 1/√2], [0, 1/√2]], over τ = 0.5
    S = [[2, √2], [0, √2]]. Text → image: CE of row 0 (target 0) and row 1 (target 1); image → text:
    CE of column 0 [2, 0] (target 0) and column 1 [√2, √2] (target 1), which is log 2."""
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    visual = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    r2 = math.sqrt(2)
    t2i = (-math.log(math.exp(2) / (math.exp(2) + math.exp(r2))) - math.log(math.exp(r2) / (1 + math.exp(r2)))) / 2
    i2t = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    got = info_nce(text, visual, 0.5)
    assert got.item() == pytest.approx((t2i + i2t) / 2, rel=1e-6)
    # two rows showing one image are out of each other's softmax: each row's only candidate is its own
    assert info_nce(text, visual, 0.5, torch.tensor([7, 7])).item() == pytest.approx(0.0, abs=1e-7)
    assert info_nce(text, visual, 0.5, torch.tensor([7, 8])).item() == pytest.approx(got.item())
    # cosine: the scale of the states does not matter; the temperature does
    assert info_nce(3 * text, 0.1 * visual, 0.5).item() == pytest.approx(got.item(), rel=1e-6)
    assert info_nce(text, visual, 0.1).item() != pytest.approx(got.item())


def test_retrieval_losses_per_task_option():
    torch.manual_seed(0)
    head = RetrievalHead(HeadConfig(), D)
    assert head.default_loss_weights == {"mc": 1.0, "contrastive": 1.0}
    scores = torch.randn(B, 4)
    single = {"single_text": torch.randn(B, D), "single_regions": torch.randn(B, D)}
    batch = {"label": torch.zeros(B, dtype=torch.long), "image_id": torch.arange(B * 4).view(B, 4), **single}
    nce = info_nce(single["single_text"], single["single_regions"], 0.2)
    both = head.losses(scores, batch, loss="both", temperature=0.2)
    assert both.keys() == {"mc", "contrastive"}
    torch.testing.assert_close(both["mc"], F.cross_entropy(scores, batch["label"]))
    torch.testing.assert_close(both["contrastive"], nce)
    torch.testing.assert_close(head.weighted_total(both), both["mc"] + nce)
    assert head.losses(None, batch, loss="contrastive", temperature=0.2).keys() == {"contrastive"}
    assert (head.uses_joint(loss="contrastive"), head.uses_joint(loss="both"), head.uses_joint()) == (False, True, True)
    assert head.single_inputs(("regions", "text"), loss="both") == ("regions", "text")
    assert head.single_inputs(("regions", "text"), loss="multiple_choice") == ()
    with pytest.raises(KeyError, match="single_text"):
        head.losses(None, {"label": batch["label"]}, loss="contrastive")
    with pytest.raises(ConfigError, match="unknown retrieval loss"):
        head.losses(scores, batch, loss="triplet")
    weighted = RetrievalHead(HeadConfig(loss_weights={"contrastive": 0.5}), D)
    torch.testing.assert_close(weighted.weighted_total(both), both["mc"] + 0.5 * nce)


def test_refexp_padding_never_wins_and_is_left_out_of_the_loss():
    torch.manual_seed(0)
    head = RefExpHead(HeadConfig(), D).eval()
    o = out()
    with torch.no_grad():
        head.score.bias.fill_(-1e30)  # real proposals score hugely negative: padding must still lose
    logits = head(o)
    assert logits.shape == (B, R)
    assert (logits[~o.region_mask] == torch.finfo(logits.dtype).min).all()
    assert (logits[o.region_mask] < -1e29).all()
    assert o.region_mask.gather(1, logits.argmax(1, keepdim=True)).all()
    assert (head.predict(logits)[~o.region_mask] == 0).all()

    head = RefExpHead(HeadConfig(), D).eval()
    o = out(seed=1)
    logits = head(o)
    target = torch.rand(B, R) * o.region_mask
    loss = head.losses(logits, {"label": target})["bce"]
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    torch.testing.assert_close(loss, per[o.region_mask].sum() / B)
    noisy = target.clone()
    noisy[~o.region_mask] = 1.0  # a target on padding must not matter
    torch.testing.assert_close(head.losses(logits, {"label": noisy, "region_mask": o.region_mask})["bce"], loss)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="one per proposal"):
        head.losses(logits, {"label": torch.zeros(B, R + 1)})


def test_nlvr_head_concatenates_the_two_passes():
    torch.manual_seed(0)
    head = NLVRHead(HeadConfig(), D).eval()
    o = out(views=2)
    logits = head(o)
    assert logits.shape == (B, 2)
    joint = o.h_img * o.h_cls
    torch.testing.assert_close(logits, head.classifier.mlp(torch.cat([joint[:, 0], joint[:, 1]], -1)))
    assert head.classifier.mlp[0].in_features == 2 * D and head.classifier.mlp[0].out_features == 2 * D
    swapped = TrunkOutput({k: v.flip(1) for k, v in o.states.items()}, {k: v.flip(1) for k, v in o.masks.items()}, 2)
    assert not torch.allclose(head(swapped), logits)  # order of the two images matters (I_0, I_1)
    label = torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(head.losses(logits, {"label": label})["ce"], F.cross_entropy(logits, label))
    torch.testing.assert_close(head.predict(logits).sum(-1), torch.ones(B))
    with pytest.raises(ValueError, match="K = 2"):
        head(out())


def test_snli_ve_head_three_way_softmax():
    torch.manual_seed(0)
    head = SNLIVEHead(HeadConfig(), D).eval()
    o = out()
    logits = head(o)
    assert logits.shape == (B, 3)
    assert head.classifier.mlp[0].in_features == D and head.classifier.mlp[0].out_features == 2 * D
    label = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(head.losses(logits, {"label": label})["ce"], F.cross_entropy(logits, label))
    torch.testing.assert_close(head.predict(logits), logits.softmax(-1))
    with pytest.raises(ValueError, match="label"):
        head.losses(logits, {"label": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="one image"):
        head(out(views=2))
