"""The shared trunk on one-input tasks (PolyViT): L_adapt kind-specific first layers, then shared ones."""

import pytest
import torch

from cotrain.trunks.layers import Block
from cotrain.trunks.output import Tokens
from cotrain.trunks.shared import SharedTrunk

D = 32
PER_BLOCK = 12 * D * D + 13 * D  # LN 2·2D, qkv 3D²+3D, proj D²+D, fc1 4D²+4D, fc2 4D²+D


def _count(m):
    return sum(p.numel() for p in m.parameters())


def one(tr, x, mask=None, kind="image", task_ids=None):
    return tr({kind: Tokens(x, mask)}, task_ids).states[kind]


def test_output_shape_and_final_norm():
    tr = SharedTrunk(D, 2, 4, kinds=["image"]).eval()
    out = one(tr, torch.randn(3, 5, D))
    assert out.shape == (3, 5, D)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kinds", [["image", "audio"], ["image", "video", "audio"]])
def test_l_adapt_parameter_count(kinds):
    depth = 4
    base = SharedTrunk(D, depth, 4, l_adapt=0, kinds=kinds)
    adapt = SharedTrunk(D, depth, 4, l_adapt=depth // 2, kinds=kinds)
    assert _count(adapt) - _count(base) == (len(kinds) - 1) * (depth // 2) * PER_BLOCK
    assert _count(base) == depth * PER_BLOCK + 2 * D
    assert len(adapt.shared) == depth - depth // 2
    for kind in kinds:
        assert len(adapt.adapter_layers(kind)) == depth // 2


def test_adapters_are_distinct_and_shared_layers_are_shared():
    tr = SharedTrunk(D, 4, 4, l_adapt=2, kinds=["image", "audio"])
    img, aud = tr.adapter_layers("image"), tr.adapter_layers("audio")
    for i in range(2):
        assert img[i] is not aud[i]
        assert img[i].attn.qkv.weight.data_ptr() != aud[i].attn.qkv.weight.data_ptr()


def test_the_forward_is_adapters_then_shared_layers_then_norm():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 3, 4, l_adapt=1, kinds=["image", "audio"]).eval()
    x = torch.randn(2, 5, D)
    want = x
    for blk in [*tr.adapters["audio"], *tr.shared]:
        want = blk(want)
    torch.testing.assert_close(one(tr, x, kind="audio"), tr.norm(want))


def test_image_gradient_does_not_touch_audio_adapters():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 3, 4, l_adapt=1, kinds=["image", "audio"])
    one(tr, torch.randn(2, 5, D)).pow(2).sum().backward()
    assert all(p.grad is None for p in tr.adapters["audio"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.adapters["image"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.shared.parameters())


def test_drop_path_schedule_is_linear_over_depth():
    tr = SharedTrunk(D, 5, 4, drop_path=0.2, l_adapt=2, kinds=["image", "video"])
    want = [0.0, 0.05, 0.1, 0.15, 0.2]
    assert tr.drop_path_rates == pytest.approx(want)
    for kind in ("image", "video"):
        assert [b.drop_path.p for b in [*tr.adapter_layers(kind), *tr.shared]] == pytest.approx(want)
    assert SharedTrunk(D, 1, 4, drop_path=0.3).drop_path_rates == [0.0]


def test_unknown_kind_names_the_known_ones():
    tr = SharedTrunk(D, 2, 4, l_adapt=1, kinds=["image", "audio"])
    with pytest.raises(ValueError, match=r"'video'.*\['image', 'audio'\]"):
        one(tr, torch.randn(1, 3, D), kind="video")
    with pytest.raises(ValueError, match="l_adapt"):
        SharedTrunk(D, 2, 4, l_adapt=3, kinds=["image"])


def test_mask_is_used():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 2, 4, kinds=["text"]).eval()
    x = torch.randn(2, 6, D)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    y = x.clone()
    y[0, 3:] = 100.0
    with torch.no_grad():
        a, b = one(tr, x, mask, "text"), one(tr, y, mask, "text")
    torch.testing.assert_close(a[mask], b[mask])
    assert not torch.allclose(one(tr, y, None, "text")[0, 0], a[0, 0])
    assert isinstance(tr.shared[0], Block)


def test_a_task_token_on_a_one_input_task_goes_after_its_class_token_and_is_stripped():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 1, 4, kinds=["image"], num_task_tokens=2).eval()
    seen = []
    tr.shared[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    x = torch.randn(2, 5, D)
    out = one(tr, x, task_ids=torch.tensor([1, 0]))
    assert seen[0].shape == (2, 6, D) and out.shape == (2, 5, D)
    torch.testing.assert_close(seen[0][:, 1], tr.task_tokens.embed.weight[torch.tensor([1, 0])])
    assert not torch.allclose(out, one(tr, x, task_ids=torch.tensor([0, 1])))
