"""The conv-backbone image encoder (``stem: backbone``, UniT / DETR's image side): shapes, strides,
masks, and DETR's 2-D sine positions checked by hand and against a per-cell oracle."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cotrain.config import ConfigError, EncodersConfig, ImageEncoderConfig
from cotrain.encoders import build_encoder, encode
from cotrain.encoders.backbone import (
    BackboneImageEncoder, ConvBackbone, ResidualBlock, downsample_mask, sine_positions,
)
from cotrain.encoders.image import ImageEncoder

pytestmark = pytest.mark.usefixtures("one_thread")

D = 16
PI = math.pi




def cfg(**kw) -> ImageEncoderConfig:
    base = dict(image_size=16, stem="backbone", backbone_widths=(8, 16), backbone_stride=4)
    base.update(kw)
    return ImageEncoderConfig(**base)


def pixels(b=2, h=16, w=16, seed=0):
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ sine positions
def test_sine_positions_on_a_2x2_grid_by_hand():
    pos = sine_positions(torch.ones(1, 2, 2, dtype=torch.bool), 8)[0]  # [2, 2, 8]
    # y = (1, 2) / 2 · 2π = (π, 2π) down the rows, x the same along the columns; n = 4 channels each,
    # t = 10000 ** (2 ⌊i/2⌋ / 4) = (1, 1, 100, 100): [sin y, cos y, sin y/100, cos y/100, the same of x]
    def cell(y, x):
        return [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),
                math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]

    want = torch.tensor([[cell(PI, PI), cell(PI, 2 * PI)], [cell(2 * PI, PI), cell(2 * PI, 2 * PI)]])
    torch.testing.assert_close(pos, want, atol=1e-5, rtol=0)
    assert pos[0, 0, :2].tolist() == pytest.approx([0.0, -1.0], abs=1e-5)  # sin π, cos π
    assert pos[1, 1, 4:6].tolist() == pytest.approx([0.0, 1.0], abs=1e-5)  # sin 2π, cos 2π


def test_sine_positions_of_a_padded_grid_cover_the_real_area_only():
    mask = torch.tensor([[[True, False], [True, False]]])  # the right column is padding
    pos = sine_positions(mask, 4)[0]  # n = 2: [sin y, cos y, sin x, cos x], t = (1, 1)
    # real column: y = (π, 2π), x = 1 / 1 · 2π = 2π; padded column: its cumulative counts are 0
    torch.testing.assert_close(pos[:, 0], torch.tensor([[0.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]), atol=1e-5, rtol=0)
    assert pos[0, 1, :2].tolist() == pytest.approx([0.0, 1.0], abs=1e-5)  # y = 0 in the all-padding column


def _oracle(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """DETR's formula, cell by cell."""
    b, h, w = mask.shape
    n = dim // 2
    out = torch.zeros(b, h, w, dim, dtype=torch.float64)
    for k in range(b):
        for r in range(h):
            for c in range(w):
                y = mask[k, : r + 1, c].sum().item() / (mask[k, :, c].sum().item() + 1e-6) * 2 * PI
                x = mask[k, r, : c + 1].sum().item() / (mask[k, r, :].sum().item() + 1e-6) * 2 * PI
                for i in range(n):
                    t = 10000 ** (2 * (i // 2) / n)
                    f = math.sin if i % 2 == 0 else math.cos
                    out[k, r, c, i] = f(y / t)
                    out[k, r, c, n + i] = f(x / t)
    return out


def test_sine_positions_match_the_formula_cell_by_cell():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 3, 5, dtype=torch.bool)
    mask[0, :3, :4] = True
    mask[1, :2, :5] = True
    mask[1, 2, 0] = True
    torch.testing.assert_close(sine_positions(mask, 12).double(), _oracle(mask, 12), atol=1e-5, rtol=0)
    rand = torch.rand(1, 4, 4, generator=g) > 0.3
    torch.testing.assert_close(sine_positions(rand, 8).double(), _oracle(rand, 8), atol=1e-5, rtol=0)


def test_padding_gives_the_real_cells_the_positions_of_the_image_alone():
    alone = sine_positions(torch.ones(1, 3, 2, dtype=torch.bool), D)
    canvas = torch.zeros(1, 4, 5, dtype=torch.bool)
    canvas[0, :3, :2] = True
    padded = sine_positions(canvas, D)
    torch.testing.assert_close(padded[:, :3, :2], alone)
    assert not torch.allclose(sine_positions(torch.ones(1, 4, 5, dtype=torch.bool), D)[:, :3, :2], alone)


def test_sine_positions_need_a_width_multiple_of_4():
    with pytest.raises(ValueError, match="multiple of 4"):
        sine_positions(torch.ones(1, 2, 2, dtype=torch.bool), 6)
    with pytest.raises(ConfigError, match="multiple of 4"):
        BackboneImageEncoder(cfg(), 18)


# ------------------------------------------------------------------ backbone
@pytest.mark.parametrize("widths,stride", [((8,), 1), ((8, 16), 4), ((8, 16, 16), 8), ((8, 8, 16, 16), 16), ((8, 16, 16, 32), 4)])
def test_backbone_stride_and_widths(widths, stride):
    net = ConvBackbone(3, widths, 1, stride)
    assert net(torch.randn(1, 3, 32, 48)).shape == (1, widths[-1], 32 // stride, 48 // stride)
    strided = [m for m in net.layers if isinstance(m, ResidualBlock) and m.conv1.stride == (2, 2)]
    assert len(strided) == int(math.log2(stride))
    assert all(net.layers[i] is strided[i] for i in range(len(strided)))  # the first stages downsample


def test_backbone_blocks_per_stage_and_residual_init():
    net = ConvBackbone(3, (8, 16), 3, 4)
    blocks = list(net.layers)
    assert len(blocks) == 6 and sum(isinstance(b.shortcut, nn.Identity) for b in blocks) == 4
    blk = blocks[1]  # identity shortcut: at init the block is ReLU(x) (its last norm starts at zero)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(blk(x), torch.relu(x))


def test_backbone_stride_must_fit_the_stages():
    with pytest.raises(ConfigError, match="power of two"):
        ConvBackbone(3, (8, 16), 1, 8)
    with pytest.raises(ConfigError, match="power of two"):
        ConvBackbone(3, (8, 16), 1, 3)
    with pytest.raises(ValueError, match="backbone_stride must be a power of two"):
        ImageEncoderConfig(backbone_stride=12)
    with pytest.raises(ValueError, match="needs 4 downsampling stages"):
        ImageEncoderConfig(backbone_widths=(8, 16), backbone_stride=16)
    with pytest.raises(ConfigError, match="image_size 20 is not a multiple of backbone_stride 8"):
        BackboneImageEncoder(cfg(image_size=20, backbone_widths=(8, 8, 8), backbone_stride=8), D)


# ------------------------------------------------------------------ the encoder
def test_encoder_shapes_any_multiple_of_the_stride():
    torch.manual_seed(0)
    e = BackboneImageEncoder(cfg(), D).eval()
    for h, w in [(16, 16), (8, 24), (32, 4)]:
        x, mask = e(pixels(h=h, w=w))
        n = (h // 4) * (w // 4)
        assert x.shape == (2, 1 + n, D) and mask.shape == (2, 1 + n) and mask.dtype == torch.bool and mask.all()
    with pytest.raises(ValueError, match="not a multiple of the backbone stride 4"):
        e(pixels(h=16, w=18))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        e(torch.zeros(2, 1, 16, 16))


def test_image_mask_becomes_the_token_mask_and_moves_the_positions():
    torch.manual_seed(0)
    e = BackboneImageEncoder(cfg(), D).eval()
    img = pixels()
    image_mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    image_mask[0] = True
    image_mask[1, :8, :12] = True  # real area 8 x 12 → a 2 x 3 block of the 4 x 4 grid
    x, mask = e(img, image_mask)
    want = torch.zeros(2, 4, 4, dtype=torch.bool)
    want[0] = True
    want[1, :2, :3] = True
    assert mask[:, 0].all()
    torch.testing.assert_close(mask[:, 1:], want.flatten(1))
    full, full_mask = e(img)
    assert full_mask.all()
    torch.testing.assert_close(x[0], full[0])  # an all-real mask changes nothing
    # the padded image's real tokens = its features + the positions of a 2 x 3 image
    feats = e.proj(e.backbone((img.float() / 255 - 0.5) / 0.5)).flatten(2).transpose(1, 2)
    pos = sine_positions(torch.ones(1, 2, 3, dtype=torch.bool), D).flatten(1, 2)[0]
    torch.testing.assert_close(x[1, 1:][want[1].flatten()], feats[1][want[1].flatten()] + pos, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(x[1, 1:][want[1].flatten()], full[1, 1:][want[1].flatten()])
    torch.testing.assert_close(x[:, 0], e.cls_token[0].expand(2, -1))  # the class token carries no position
    with pytest.raises(ValueError, match="image_mask must be"):
        e(img, image_mask[:, :8])


def test_downsample_mask_is_nearest():
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, :5, :3] = True
    got = downsample_mask(m, (2, 4))  # cells of 4 x 2 pixels: real when their top-left pixel is
    want = torch.tensor([[[True, True, False, False], [True, True, False, False]]])
    torch.testing.assert_close(got, want)


def test_learned_positions_index_rows_and_columns_up_to_the_configured_grid():
    torch.manual_seed(0)
    e = BackboneImageEncoder(cfg(backbone_pos="learned"), D).eval()
    assert e.pos.row.shape == (4, D // 2)
    p = e.positions(torch.ones(1, 2, 3, dtype=torch.bool))[0]  # [2, 3, D] = [col(x), row(y)]
    torch.testing.assert_close(p[1, 2], torch.cat([e.pos.col[2], e.pos.row[1]]))
    x, _ = e(pixels(h=8, w=12))
    assert x.shape == (2, 1 + 6, D)
    with pytest.raises(ValueError, match="exceeds the learned positions"):
        e(pixels(h=20, w=16))
    x.sum().backward()
    assert e.pos.row.grad is not None and e.pos.row.grad[2:].abs().sum() == 0  # rows past the grid unused


def test_per_example_pixel_norm_and_float_input():
    torch.manual_seed(0)
    e = BackboneImageEncoder(cfg(pixel_norm="per_example"), D).eval()
    img = pixels()
    scaled = img.float() * 0.5 + 10  # per-example standardisation removes an affine change of the pixels
    a, _ = e(img.float() / 255)
    b, _ = e(scaled / 255)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ the encoder table
def test_the_image_entry_builds_the_backbone_and_passes_image_mask():
    torch.manual_seed(0)
    enc = EncodersConfig(image=cfg())
    e = build_encoder("image", enc, D).eval()
    assert isinstance(e, BackboneImageEncoder)
    assert isinstance(build_encoder("image", EncodersConfig(image=cfg(stem="patch", patch_size=4)), D), ImageEncoder)
    img = pixels()
    image_mask = torch.ones(2, 16, 16, dtype=torch.bool)
    image_mask[:, :, 8:] = False
    with_mask = encode(e, "image", {"image": img, "image_mask": image_mask})
    without = encode(e, "image", {"image": img})
    assert int(with_mask.mask.sum()) == 2 * (1 + 8) and without.mask.all()
    views = encode(e, "image", {"image": img[:, None].expand(-1, 2, -1, -1, -1),
                                "image_mask": image_mask[:, None].expand(-1, 2, -1, -1)}, views=2)
    torch.testing.assert_close(views.mask[::2], with_mask.mask)


def test_the_patch_encoder_masks_patches_of_padding_too():
    torch.manual_seed(0)
    e = ImageEncoder(ImageEncoderConfig(image_size=16, patch_size=4), D).eval()
    image_mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    image_mask[:, :8, :] = True
    x, mask = e(pixels(), image_mask)
    assert x.shape == (2, 17, D) and mask[:, 0].all() and mask[:, 1:9].all() and not mask[:, 9:].any()
    assert e(pixels())[1] is None
