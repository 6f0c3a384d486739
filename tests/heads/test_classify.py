import pytest
import torch
import torch.nn.functional as F

from cotrain.config import HeadConfig
from cotrain.heads import HEADS, build_head
from cotrain.heads.classify import ClassifyHead, pool_tokens

D = 16


def test_cls_pooling_and_linear_shape():
    head = build_head(HeadConfig(), D, 5)
    assert isinstance(head, ClassifyHead) and isinstance(head.mlp, torch.nn.Linear)
    tokens = torch.randn(3, 4, D)
    logits = head(tokens, None)
    assert logits.shape == (3, 5)
    torch.testing.assert_close(logits, head.mlp(tokens[:, 0]))
    assert set(HEADS) == {"classify", "multilabel"}


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
    head = ClassifyHead(HeadConfig(mlp=True), D, 3)
    assert head.mlp[0].out_features == D and isinstance(head.mlp[1], torch.nn.GELU)
    head = ClassifyHead(HeadConfig(mlp=True, hidden=40, pool="mean", dropout=0.1), D, 3)
    assert head.mlp[0].out_features == 40 and head.mlp[2].out_features == 3
    assert head(torch.randn(2, 3, D), torch.ones(2, 3, dtype=torch.bool)).shape == (2, 3)


def test_classify_loss_and_predict():
    head = ClassifyHead(HeadConfig(), D, 4)
    logits = torch.randn(5, 4)
    target = torch.tensor([0, 1, 2, 3, 0])
    out = head.losses(logits, target)
    assert set(out) == {"ce"}
    torch.testing.assert_close(out["ce"], F.cross_entropy(logits, target))
    probs = head.predict(logits)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5))
    with pytest.raises(TypeError, match="int64"):
        head.losses(logits, torch.rand(5, 4))


def test_multilabel_loss_and_predict():
    head = ClassifyHead(HeadConfig(type="multilabel"), D, 4)
    logits = torch.randn(5, 4)
    target = (torch.rand(5, 4) > 0.5).float()
    out = head.losses(logits, target)
    assert set(out) == {"bce"}
    torch.testing.assert_close(out["bce"], F.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(head.predict(logits), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="shape"):
        head.losses(logits, torch.zeros(5, dtype=torch.long))


def test_classifier_starts_small_so_the_first_prediction_is_near_uniform():
    torch.manual_seed(0)
    for mlp in (False, True):
        head = ClassifyHead(HeadConfig(mlp=mlp), 8, 5)
        last = head.mlp[-1] if mlp else head.mlp
        assert 0 < float(last.weight.detach().abs().max()) <= 0.04  # small but not zero: gradients reach the trunk
        probs = head.predict(head(torch.nn.functional.layer_norm(torch.randn(3, 4, 8), (8,))))
        torch.testing.assert_close(probs, torch.full((3, 5), 0.2), atol=0.05, rtol=0)
