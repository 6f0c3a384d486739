import pytest
import torch
import torch.nn.functional as F

from cotrain.config import EncodersConfig, ImageEncoderConfig, TextEncoderConfig, VideoEncoderConfig
from cotrain.encoders import ENCODERS, build_encoder, resample_pos_embed
from cotrain.encoders.image import ImageEncoder
from cotrain.encoders.regions import RegionEncoder
from cotrain.encoders.text import TextEncoder
from cotrain.encoders.video import VideoEncoder

D = 32


def _grid(pe, grid):
    """[1, 1+N, D] → [1, D, *grid] (the positional grid without the class token)."""
    return pe[:, 1:].reshape(1, *grid, pe.shape[-1]).movedim(-1, 1)


# ------------------------------------------------------------------ build_encoder
def test_build_encoder_dispatch_and_errors():
    enc = EncodersConfig()
    assert isinstance(build_encoder("image", enc, D), ImageEncoder)
    assert isinstance(build_encoder("video", enc, D), VideoEncoder)
    assert isinstance(build_encoder("text", enc, D, vocab_size=50), TextEncoder)
    assert isinstance(build_encoder("regions", enc, D, region_dim=7), RegionEncoder)
    assert set(ENCODERS) == {"image", "video", "audio", "text", "regions"}
    with pytest.raises(ValueError, match="unknown input kind 'lidar'.*audio"):
        build_encoder("lidar", enc, D)
    with pytest.raises(ValueError, match="vocabulary size"):
        build_encoder("text", enc, D)
    with pytest.raises(ValueError, match="region feature size is unknown"):
        build_encoder("regions", enc, D)


def test_init_is_truncated_normal_002():
    torch.manual_seed(0)
    e = ImageEncoder(ImageEncoderConfig(image_size=64, patch_size=4), 64)
    pe = e.pos_embed.detach()
    assert pe.abs().max() <= 0.04 + 1e-6
    assert 0.01 < pe.std() < 0.02
    assert e.cls_token.abs().max() <= 0.04 + 1e-6


# ------------------------------------------------------------------ image
def test_image_shapes_and_uint8_scaling():
    e = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8), D)
    x8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    tokens, mask = e(x8)
    assert tokens.shape == (2, 1 + 16, D) and mask is None
    # uint8 and the same pixels as float in [0, 1] give the same tokens
    tokens_f, _ = e(x8.float() / 255)
    torch.testing.assert_close(tokens, tokens_f, rtol=1e-5, atol=1e-5)
    # class token position: cls + pe[0] for every example
    torch.testing.assert_close(tokens[:, 0], (e.cls_token + e.pos_embed[:, :1])[0].expand(2, -1))


def test_image_patch_size_must_divide():
    e = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8), D)
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        e(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        e(torch.zeros(1, 32, 32))


def test_image_same_size_uses_identical_embedding():
    e = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8), D)
    assert e.pos_embed_for((4, 4)) is e.pos_embed


def test_image_resampled_grid_matches_interpolate():
    torch.manual_seed(0)
    e = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8), D).eval()
    x = torch.rand(2, 3, 48, 48)
    tokens, _ = e(x)
    assert tokens.shape == (2, 1 + 36, D)
    pe = e.pos_embed.detach()
    want = F.interpolate(_grid(pe, (4, 4)), size=(6, 6), mode="bicubic", align_corners=False)
    got = resample_pos_embed(pe, (4, 4), (6, 6))
    torch.testing.assert_close(_grid(got, (6, 6)), want)
    torch.testing.assert_close(got[:, :1], pe[:, :1])  # class-token position kept
    # the encoder used exactly that embedding
    patches = e.patch_embed((x - 0.5) / 0.5).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens[:, 1:], patches + got[:, 1:], rtol=1e-5, atol=1e-5)
    # non-square input too
    tokens, _ = e(torch.rand(1, 3, 16, 40))
    assert tokens.shape == (1, 1 + 2 * 5, D)


def test_resample_pos_embed_checkpoint_at_other_resolution():
    torch.manual_seed(0)
    small = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8), D).eval()
    big = ImageEncoder(ImageEncoderConfig(image_size=48, patch_size=8), D).eval()
    state = small.state_dict()
    state["pos_embed"] = resample_pos_embed(state["pos_embed"], (4, 4), (6, 6))
    big.load_state_dict(state)
    x = torch.rand(2, 3, 48, 48)
    torch.testing.assert_close(big(x)[0], small(x)[0])


def test_resample_pos_embed_checks():
    pe = torch.randn(1, 17, 8)
    assert resample_pos_embed(pe, (4, 4), (4, 4)) is pe
    assert resample_pos_embed(pe[0], (4, 4), (2, 3)).shape == (7, 8)  # no batch dim
    with pytest.raises(ValueError, match="does not hold"):
        resample_pos_embed(pe, (3, 3), (4, 4))
    with pytest.raises(ValueError, match="2-D grid"):
        resample_pos_embed(pe, (4, 4), (2, 2, 2))


# ------------------------------------------------------------------ video
def test_video_shapes():
    cfg = VideoEncoderConfig(frames=4, image_size=32, tubelet=(2, 8, 8))
    e = VideoEncoder(cfg, D)
    tokens, mask = e(torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8))
    assert tokens.shape == (2, 1 + 2 * 4 * 4, D) and mask is None
    assert e.pos_embed_for((2, 4, 4)) is e.pos_embed
    with pytest.raises(ValueError, match="frames"):
        e(torch.zeros(1, 3, 3, 32, 32))


def test_video_more_frames_resamples_trilinear():
    torch.manual_seed(0)
    e = VideoEncoder(VideoEncoderConfig(frames=4, image_size=32, tubelet=(2, 8, 8)), D)
    x = torch.rand(2, 8, 3, 32, 32)
    tokens, _ = e(x)
    assert tokens.shape == (2, 1 + 4 * 4 * 4, D)
    pe = e.pos_embed.detach()
    want = F.interpolate(_grid(pe, (2, 4, 4)), size=(4, 4, 4), mode="trilinear", align_corners=False)
    got = resample_pos_embed(pe, (2, 4, 4), (4, 4, 4))
    torch.testing.assert_close(_grid(got, (4, 4, 4)), want)
    conv = e.patch_embed(((x - 0.5) / 0.5).transpose(1, 2)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens[:, 1:], (conv + got[:, 1:]).detach(), rtol=1e-5, atol=1e-5)


def test_video_tubelet_order_is_time_height_width():
    """Changing only frames 2-3 changes only the tokens of the second temporal slice."""
    torch.manual_seed(0)
    e = VideoEncoder(VideoEncoderConfig(frames=4, image_size=16, tubelet=(2, 8, 8)), D)
    x = torch.rand(1, 4, 3, 16, 16)
    y = x.clone()
    y[:, 2:] = torch.rand(1, 2, 3, 16, 16)
    changed = (e(x)[0] - e(y)[0]).abs().sum(-1)[0, 1:] > 0
    assert changed.tolist() == [False] * 4 + [True] * 4


# ------------------------------------------------------------------ text
def test_text_mask_and_shapes():
    e = TextEncoder(TextEncoderConfig(max_len=8), D, vocab_size=20)
    ids = torch.tensor([[5, 6, 7, 0, 4], [3, 0, 0, 0, 0]])
    tokens, mask = e(ids)
    assert tokens.shape == (2, 6, D)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True, True, False, True], [True, True, False, False, False, False]]
    assert torch.all(e.embed.weight[0] == 0)
    # shorter sequences use the first positions
    torch.testing.assert_close(tokens[:, 1:] - e.embed(ids), e.pos_embed[:, 1:6].expand(2, -1, -1))


def test_text_too_long_names_limit():
    e = TextEncoder(TextEncoderConfig(max_len=4), D, vocab_size=20)
    e(torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="length 5 exceeds max_len 4"):
        e(torch.ones(1, 5, dtype=torch.long))


def test_text_columns_that_are_padding_in_every_row_are_dropped_and_change_nothing():
    torch.manual_seed(0)
    enc = TextEncoder(TextEncoderConfig(max_len=10), D, vocab_size=30).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0], [9, 4, 0, 0, 0, 0, 0, 0]])
    x, mask = enc(ids)
    assert x.shape == (2, 4, D) and mask.tolist() == [[True] * 4, [True, True, True, False]]
    short, _ = enc(ids[:, :3])
    torch.testing.assert_close(x, short)
