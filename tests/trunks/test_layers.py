import math

import pytest
import torch
import torch.nn.functional as F

from cotrain.trunks.layers import Block, DropPath


# ------------------------------------------------------------------ drop-path
def test_drop_path_identity_in_eval_and_at_zero():
    x = torch.randn(8, 5, 4)
    dp = DropPath(0.5).eval()
    assert dp(x) is x
    assert DropPath(0.0).train()(x) is x
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_drop_path_preserves_expectation_in_train():
    torch.manual_seed(0)
    p = 0.3
    dp = DropPath(p).train()
    x = torch.ones(20000, 3, 2)
    y = dp(x)
    per_example = y[:, 0, 0]
    # whole examples are dropped or kept, survivors scaled by 1/(1-p)
    assert torch.all(y == per_example[:, None, None])
    values = per_example.unique()
    assert len(values) == 2
    assert float(values[0]) == 0.0 and float(values[1]) == pytest.approx(1 / (1 - p))
    assert float((per_example == 0).float().mean()) == pytest.approx(p, abs=0.015)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.02)


# ------------------------------------------------------------------ attention oracle
def _oracle_block(blk: Block, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The same block with attention written out as softmax(QK^T/sqrt(d) + mask) V."""
    b, n, d = x.shape
    h = blk.attn.num_heads
    hd = d // h
    y = F.layer_norm(x, (d,), blk.norm1.weight, blk.norm1.bias, blk.norm1.eps)
    qkv = y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
    q, k, v = qkv.split(d, dim=-1)
    q, k, v = (t.reshape(b, n, h, hd).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    attn = scores.softmax(-1) @ v
    attn = attn.transpose(1, 2).reshape(b, n, d) @ blk.attn.proj.weight.T + blk.attn.proj.bias
    x = x + attn
    y = F.layer_norm(x, (d,), blk.norm2.weight, blk.norm2.bias, blk.norm2.eps)
    y = F.gelu(y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    return x + y


@pytest.mark.parametrize("with_mask", [False, True])
def test_sdpa_block_matches_handwritten_attention(with_mask):
    torch.manual_seed(0)
    blk = Block(32, 4, mlp_ratio=2.0).eval()
    x = torch.randn(3, 7, 32)
    mask = None
    if with_mask:
        mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(blk(x, mask), _oracle_block(blk, x, mask), rtol=1e-5, atol=1e-5)


def test_padded_tokens_do_not_change_real_outputs():
    torch.manual_seed(0)
    blk = Block(16, 2).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    y = x.clone()
    y[~mask] = torch.randn(int((~mask).sum()), 16) * 10
    with torch.no_grad():
        a, b = blk(x, mask), blk(y, mask)
    torch.testing.assert_close(a[mask], b[mask])
    # a pre-broadcast [B, 1, 1, L] mask is accepted as well
    torch.testing.assert_close(blk(x, mask[:, None, None, :]), blk(x, mask))


def test_block_sizes():
    blk = Block(32, 4, mlp_ratio=4.0)
    assert blk.mlp.fc1.out_features == 128
    assert sum(p.numel() for p in blk.parameters()) == 12 * 32 * 32 + 13 * 32
    with pytest.raises(ValueError, match="divisible"):
        Block(30, 4)
