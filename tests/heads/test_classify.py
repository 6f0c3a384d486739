import pytest
import torch
import torch.nn.functional as F

from cotrain.config import HeadConfig
from cotrain.heads import HEADS, build_head
from cotrain.heads.classify import ClassifyHead, pool
from cotrain.trunks.output import TrunkOutput

D = 16


def one(tokens, mask=None, kind="image"):
    """A one-stream trunk output."""
    return TrunkOutput({kind: tokens}, {kind: torch.ones(tokens.shape[:2], dtype=torch.bool) if mask is None else mask})


def pool_tokens(tokens, mask, how):
    return pool(one(tokens, mask), how)


def test_cls_pooling_and_linear_shape():
    head = build_head(HeadConfig(type="classify"), D, 5)
    assert isinstance(head, ClassifyHead) and isinstance(head.mlp, torch.nn.Linear)
    tokens = torch.randn(3, 4, D)
    logits = head(one(tokens))
    assert logits.shape == (3, 5)
    torch.testing.assert_close(logits, head.mlp(tokens[:, 0]))
    assert set(HEADS) == {"classify", "multilabel", "vqa", "retrieval", "refexp", "nlvr", "snli-ve", "detect", "pretrain"}


def test_cls_pooling_of_two_streams_is_their_joint_first_tokens():
    head = build_head(HeadConfig(type="classify"), D, 5)
    a, b = torch.randn(3, 4, D), torch.randn(3, 2, D)
    two = TrunkOutput({"regions": a, "text": b}, {"regions": torch.ones(3, 4, dtype=torch.bool),
                                                  "text": torch.ones(3, 2, dtype=torch.bool)})
    torch.testing.assert_close(head(two), head.mlp(a[:, 0] * b[:, 0]))


def test_mean_pooling_ignores_padding_and_class_token():
    tokens = torch.randn(2, 5, D)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    pooled = pool_tokens(tokens, mask, "mean")
    torch.testing.assert_close(pooled[0], tokens[0, 1:3].mean(0))
    torch.testing.assert_close(pooled[1], tokens[1, 1:].mean(0))
    changed = tokens.clone()
    changed[0, 3:] = 1e3
    changed[:, 0] = -1e3  # the class token is not part of the mean
    torch.testing.assert_close(pool_tokens(changed, mask, "mean"), pooled)
    torch.testing.assert_close(pool_tokens(tokens, None, "mean"), tokens[:, 1:].mean(1))
    # an example without real tokens pools to zeros, not NaN
    empty = torch.tensor([[1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(pool_tokens(tokens[:1], empty, "mean"), torch.zeros(1, D))


def test_mlp_head_hidden_width():
    head = ClassifyHead(HeadConfig(type="classify", mlp=True), D, 3)
    assert head.mlp[0].out_features == D and isinstance(head.mlp[1], torch.nn.GELU)
    head = ClassifyHead(HeadConfig(type="classify", mlp=True, hidden=40, pool="mean", dropout=0.1), D, 3)
    assert head.mlp[0].out_features == 40 and head.mlp[2].out_features == 3
    assert head(one(torch.randn(2, 3, D))).shape == (2, 3)


def test_classify_loss_and_predict():
    head = ClassifyHead(HeadConfig(type="classify"), D, 4)
    logits = torch.randn(5, 4)
    target = torch.tensor([0, 1, 2, 3, 0])
    out = head.losses(logits, {"label": target})
    assert set(out) == {"ce"}
    torch.testing.assert_close(out["ce"], F.cross_entropy(logits, target))
    probs = head.predict(logits)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5))
    with pytest.raises(TypeError, match="int64"):
        head.losses(logits, {"label": torch.rand(5, 4)})


def test_multilabel_loss_and_predict():
    head = ClassifyHead(HeadConfig(type="multilabel"), D, 4)
    logits = torch.randn(5, 4)
    target = (torch.rand(5, 4) > 0.5).float()
    out = head.losses(logits, {"label": target})
    assert set(out) == {"bce"}
    torch.testing.assert_close(out["bce"], F.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(head.predict(logits), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="shape"):
        head.losses(logits, {"label": torch.zeros(5, dtype=torch.long)})


def test_classifier_starts_small_so_the_first_prediction_is_near_uniform():
    torch.manual_seed(0)
    for mlp in (False, True):
        head = ClassifyHead(HeadConfig(type="classify", mlp=mlp), 8, 5)
        last = head.mlp[-1] if mlp else head.mlp
        assert 0 < float(last.weight.detach().abs().max()) <= 0.04  # small but not zero: gradients reach the trunk
        probs = head.predict(head(one(torch.nn.functional.layer_norm(torch.randn(3, 4, 8), (8,)))))
        torch.testing.assert_close(probs, torch.full((3, 5), 0.2), atol=0.05, rtol=0)
