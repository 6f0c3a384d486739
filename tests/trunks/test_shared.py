import pytest
import torch

from cotrain.trunks.layers import Block
from cotrain.trunks.shared import SharedTrunk

D = 32
PER_BLOCK = 12 * D * D + 13 * D  # LN 2·2D, qkv 3D²+3D, proj D²+D, fc1 4D²+4D, fc2 4D²+D


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_output_shape_and_final_norm():
    tr = SharedTrunk(D, 2, 4, modalities=["image"]).eval()
    out = tr(torch.randn(3, 5, D), None, "image")
    assert out.shape == (3, 5, D)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("modalities", [["image", "audio"], ["image", "video", "audio"]])
def test_l_adapt_parameter_count(modalities):
    depth = 4
    base = SharedTrunk(D, depth, 4, l_adapt=0, modalities=modalities)
    adapt = SharedTrunk(D, depth, 4, l_adapt=depth // 2, modalities=modalities)
    m = len(modalities)
    assert _count(adapt) - _count(base) == (m - 1) * (depth // 2) * PER_BLOCK
    assert _count(base) == depth * PER_BLOCK + 2 * D
    assert len(adapt.shared) == depth - depth // 2
    for mod in modalities:
        assert len(adapt.layers(mod)) == depth


def test_adapters_are_distinct_and_shared_layers_are_shared():
    tr = SharedTrunk(D, 4, 4, l_adapt=2, modalities=["image", "audio"])
    img, aud = tr.layers("image"), tr.layers("audio")
    for i in range(2):
        assert img[i] is not aud[i]
        assert img[i].attn.qkv.weight.data_ptr() != aud[i].attn.qkv.weight.data_ptr()
    for i in range(2, 4):
        assert img[i] is aud[i]


def test_image_gradient_does_not_touch_audio_adapters():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 3, 4, l_adapt=1, modalities=["image", "audio"])
    tr(torch.randn(2, 5, D), None, "image").pow(2).sum().backward()
    assert all(p.grad is None for p in tr.adapters["audio"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.adapters["image"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.shared.parameters())


def test_drop_path_schedule_is_linear_over_depth():
    tr = SharedTrunk(D, 5, 4, drop_path=0.2, l_adapt=2, modalities=["image", "video"])
    want = [0.0, 0.05, 0.1, 0.15, 0.2]
    assert tr.drop_path_rates == pytest.approx(want)
    for mod in ("image", "video"):
        assert [b.drop_path.p for b in tr.layers(mod)] == pytest.approx(want)
    assert SharedTrunk(D, 1, 4, drop_path=0.3).drop_path_rates == [0.0]


def test_unknown_modality_names_the_known_ones():
    tr = SharedTrunk(D, 2, 4, l_adapt=0, modalities=["image", "audio"])
    with pytest.raises(ValueError, match=r"'video'.*\['image', 'audio'\]"):
        tr(torch.randn(1, 3, D), None, "video")
    with pytest.raises(ValueError, match="l_adapt"):
        SharedTrunk(D, 2, 4, l_adapt=3, modalities=["image"])


def test_mask_is_used():
    torch.manual_seed(0)
    tr = SharedTrunk(D, 2, 4, modalities=["text"]).eval()
    x = torch.randn(2, 6, D)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    y = x.clone()
    y[0, 3:] = 100.0
    with torch.no_grad():
        a, b = tr(x, mask, "text"), tr(y, mask, "text")
    torch.testing.assert_close(a[mask], b[mask])
    assert not torch.allclose(tr(y, None, "text")[0, 0], a[0, 0])
    assert isinstance(tr.layers("text")[0], Block)
