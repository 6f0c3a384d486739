import pytest
import torch
import torch.nn.functional as F

from cotrain.config import RegionEncoderConfig
from cotrain.encoders.regions import RegionEncoder, box_geometry

pytestmark = pytest.mark.usefixtures("one_thread")

FEAT, D = 6, 16


def _enc(max_regions=8):
    torch.manual_seed(0)
    return RegionEncoder(RegionEncoderConfig(max_regions=max_regions), FEAT, D).eval()


def _inputs(b=3, r=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, r, FEAT, generator=g)
    xy0 = torch.rand(b, r, 2, generator=g) * 0.5
    boxes = torch.cat([xy0, xy0 + 0.1 + torch.rand(b, r, 2, generator=g) * 0.4], dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)[:b, :r]
    return feats, boxes, mask


def test_shapes_and_mask():
    enc = _enc()
    feats, boxes, mask = _inputs()
    tokens, out_mask = enc(feats, boxes, mask)
    assert tokens.shape == (3, 6, D)
    assert out_mask.dtype == torch.bool and out_mask.shape == (3, 6)
    assert out_mask[:, 0].all()
    assert torch.equal(out_mask[:, 1:], mask)
    _, all_real = enc(feats, boxes, None)
    assert all_real.all()


def test_region_token_is_layernorm_of_feature_plus_box_embedding():
    enc = _enc()
    feats, boxes, mask = _inputs()
    tokens, _ = enc(feats, boxes, mask)
    geom = torch.cat([boxes, ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[..., None]], -1)
    want = F.layer_norm(enc.feat_proj(feats) + enc.box_proj(geom), (D,), enc.norm.weight, enc.norm.bias)
    torch.testing.assert_close(tokens[:, 1:][mask], want[mask])


def test_img_token_is_mean_of_real_regions_with_whole_image_box():
    enc = _enc()
    feats, boxes, mask = _inputs()
    tokens, _ = enc(feats, boxes, mask)
    for i in range(3):
        mean = feats[i][mask[i]].mean(0)
        want = enc.norm(enc.feat_proj(mean) + enc.box_proj(torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])))
        torch.testing.assert_close(tokens[i, 0], want)


def test_padding_does_not_change_real_tokens_even_when_nan():
    enc = _enc()
    feats, boxes, mask = _inputs()
    ref, _ = enc(feats, boxes, mask)
    feats2, boxes2 = feats.clone(), boxes.clone()
    feats2[~mask] = torch.randn(int((~mask).sum()), FEAT) * 100
    feats2[1, 4] = float("nan")
    boxes2[~mask] = torch.rand(int((~mask).sum()), 4)
    out, _ = enc(feats2, boxes2, mask)
    assert torch.isfinite(out).all()
    real = torch.nn.functional.pad(mask, (1, 0), value=True)
    torch.testing.assert_close(out[real], ref[real])


def test_example_without_real_regions_has_finite_zero_feature_img():
    enc = _enc()
    feats, boxes, _ = _inputs(b=1)
    tokens, _ = enc(feats, boxes, torch.zeros(1, 5, dtype=torch.bool))
    want = enc.norm(enc.feat_proj(torch.zeros(FEAT)) + enc.box_proj(torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])))
    torch.testing.assert_close(tokens[0, 0], want)


def test_box_geometry_appends_area():
    g = box_geometry(torch.tensor([[0.1, 0.2, 0.5, 0.7]]))
    torch.testing.assert_close(g, torch.tensor([[0.1, 0.2, 0.5, 0.7, 0.2]]))


def test_clear_errors():
    enc = _enc(max_regions=4)
    feats, boxes, mask = _inputs(r=4)
    with pytest.raises(ValueError, match="feature_dim"):
        enc(torch.randn(3, 4, FEAT + 1), boxes, mask)
    with pytest.raises(ValueError, match="boxes"):
        enc(feats, boxes[..., :3], mask)
    with pytest.raises(ValueError, match="region_mask"):
        enc(feats, boxes, mask[:, :3])
    f5, b5, m5 = _inputs(r=5)
    with pytest.raises(ValueError, match="max_regions"):
        enc(f5, b5, m5)
