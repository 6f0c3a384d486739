"""Conv stems and per-example pixel normalisation of the image and video encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cotrain.config import ImageEncoderConfig, VideoEncoderConfig
from cotrain.encoders.image import ImageEncoder
from cotrain.encoders.stem import build_patch_embed_2d, build_patch_embed_3d, standardise
from cotrain.encoders.video import VideoEncoder

D = 16


def test_conv_stem_keeps_the_patch_grid():
    for widths, patch in [((8,), 4), ((8, 16), 8), ((8, 16), 16)]:
        stem = build_patch_embed_2d("conv", 3, D, patch, widths, "k")
        assert stem(torch.rand(2, 3, 32, 32)).shape == (2, D, 32 // patch, 32 // patch)
        strides = [m.stride for m in stem if isinstance(m, nn.Conv2d)]
        assert strides == [(2, 2)] * len(widths) + [(patch // 2 ** len(widths),) * 2]


def test_conv_stem_video_embeds_t_frames_in_the_last_layer():
    stem = build_patch_embed_3d("conv", 3, D, (2, 8, 8), (8, 16), "k")
    x = torch.rand(1, 3, 4, 16, 16)
    assert stem(x).shape == (1, D, 2, 2, 2)
    convs = [m for m in stem if isinstance(m, nn.Conv3d)]
    assert [c.kernel_size[0] for c in convs] == [1, 1, 2]  # per-frame layers, then t frames together
    y = x.clone()
    y[:, :, 2:] = torch.rand(1, 3, 2, 16, 16)  # only the second temporal slice differs
    diff = (stem(x) - stem(y)).abs().sum(dim=(0, 1, 3, 4))
    assert diff[0] == 0 and diff[1] > 0


def test_conv_stem_patch_must_divide():
    with pytest.raises(ValueError, match=r"multiples of 4"):
        build_patch_embed_2d("conv", 3, D, 6, (8, 16), "model.encoders.image")
    with pytest.raises(ValueError, match="stem must be"):
        build_patch_embed_2d("mlp", 3, D, 8, (8,), "model.encoders.image")
    with pytest.raises(ValueError, match=r"multiples of 4"):
        ImageEncoder(ImageEncoderConfig(image_size=24, patch_size=6, stem="conv"), D)


def test_encoders_with_conv_stem_give_the_same_token_count():
    img = ImageEncoder(ImageEncoderConfig(image_size=32, patch_size=8, stem="conv"), D)
    assert img(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))[0].shape == (2, 1 + 16, D)
    vid = VideoEncoder(VideoEncoderConfig(frames=4, image_size=16, tubelet=(2, 8, 8), stem="conv"), D)
    assert vid(torch.rand(2, 4, 3, 16, 16))[0].shape == (2, 1 + 2 * 2 * 2, D)


def test_standardise_per_example():
    x = torch.rand(3, 2, 4, 4) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1, 1) + 3.0
    z = standardise(x, (1, 2, 3), eps=1e-3)
    std = x.std(dim=(1, 2, 3), unbiased=False)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(1, 2, 3), unbiased=False), std / (std + 1e-3))


def test_per_example_norm_ignores_brightness_and_contrast():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 0.5
    y = 0.2 + 1.5 * x  # brighter and more contrast, still in [0, 1]
    change = {}
    for norm in ("per_example", "fixed"):
        torch.manual_seed(0)
        e = ImageEncoder(ImageEncoderConfig(image_size=16, patch_size=8, pixel_norm=norm), D).eval()
        with torch.no_grad():
            change[norm] = float((e(x)[0] - e(y)[0]).abs().max())
    assert change["per_example"] < 0.02 * change["fixed"]  # only the eps of the std differs
    e = VideoEncoder(VideoEncoderConfig(frames=2, image_size=16, tubelet=(2, 8, 8), pixel_norm="per_example"), D)
    v = torch.rand(1, 2, 3, 16, 16) * 0.5
    torch.testing.assert_close(e(v)[0], e(0.1 + 1.8 * v)[0], atol=2e-2, rtol=0)
