"""``image_augment``: a small zoom and shift per image that keeps captions true (no flip, no colour change)."""

from __future__ import annotations

import pytest
import torch

from cotrain.config import ConfigError, config_from_dict
from cotrain.data.image_augment import ImageAugment
from cotrain.data.transforms import build_transforms

S = 32


def blobs(n: int = 4) -> torch.Tensor:
    """``[n, 3, S, S]`` uint8: grey backdrop, a red square left of a blue square."""
    img = torch.full((n, 3, S, S), 60, dtype=torch.uint8)
    img[:, :, 12:18, 6:12] = torch.tensor([220, 20, 20], dtype=torch.uint8)[:, None, None]
    img[:, :, 12:18, 20:26] = torch.tensor([20, 20, 220], dtype=torch.uint8)[:, None, None]
    return img


def centroid(img: torch.Tensor, channel: int) -> torch.Tensor:
    """``[n, 2]`` (x, y) pixel-centre centroid of where ``channel`` dominates (value above 150)."""
    w = (img[:, channel].float() > 150).float()
    ys, xs = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    total = w.sum((1, 2))
    return torch.stack([(w * xs).sum((1, 2)) / total, (w * ys).sum((1, 2)) / total], 1)


def test_changes_pixels_keeps_shape_dtype_and_is_deterministic_given_the_generator():
    aug = ImageAugment(0.1, (0.8, 1.2))
    batch = {"image": blobs(), "text": torch.ones(4, 5, dtype=torch.long)}
    a = aug(batch, torch.Generator().manual_seed(0))
    assert a["image"].shape == batch["image"].shape and a["image"].dtype == torch.uint8
    assert (a["image"] != batch["image"]).any(dim=(1, 2, 3)).all()  # every image moved
    assert a["text"] is batch["text"]
    torch.testing.assert_close(aug(batch, torch.Generator().manual_seed(0))["image"], a["image"], rtol=0, atol=0)
    assert not torch.equal(aug(batch, torch.Generator().manual_seed(1))["image"], a["image"])
    assert torch.equal(batch["image"], blobs())  # the input is not changed in place
    float_out = aug({"image": blobs().float()}, torch.Generator().manual_seed(0))["image"]
    assert float_out.dtype == torch.float32


def test_content_moves_by_the_drawn_zoom_and_shift_with_no_flip():
    """Oracle: the draws in the documented order (N zooms, then N x shifts, then N y shifts) give each
    blob centre c the new centre S/2 + z (c - S/2) + 2t (S/2)."""
    aug = ImageAugment(0.1, (0.85, 1.15))
    gen = torch.Generator().manual_seed(3)
    draws = torch.Generator().manual_seed(3)
    z = 0.85 + 0.3 * torch.rand(4, generator=draws, dtype=torch.float64)
    t = (2 * torch.rand(2, 4, generator=draws, dtype=torch.float64) - 1) * 0.1
    out = aug({"image": blobs()}, gen)["image"]
    centre = (S - 1) / 2  # pixel-centre coordinates of the image centre
    for channel in (0, 2):  # red, blue
        before, after = centroid(blobs(), channel), centroid(out, channel)
        want = centre + z[:, None] * (before.double() - centre) + t.T * S
        torch.testing.assert_close(after.double(), want, atol=0.6, rtol=0)
    assert (centroid(out, 0)[:, 0] < centroid(out, 2)[:, 0]).all()  # red stays left of blue


def test_no_colour_change_and_identity_without_zoom_or_shift():
    plain = torch.zeros(2, 3, S, S, dtype=torch.uint8)
    plain[:, 0], plain[:, 1], plain[:, 2] = 200, 120, 40
    out = ImageAugment(0.2, (0.7, 1.3))({"image": plain}, torch.Generator().manual_seed(0))["image"]
    assert torch.equal(out, plain)  # a uniform image keeps its colour: edges repeat, no black frame
    same = ImageAugment(0.0, (1.0, 1.0))({"image": blobs()}, torch.Generator().manual_seed(0))["image"]
    assert torch.equal(same, blobs())


def test_every_view_of_a_view_batch_gets_its_own_draw():
    views = blobs(6).view(2, 3, 3, S, S)
    out = ImageAugment(0.1, (0.9, 1.1))({"image": views}, torch.Generator().manual_seed(0))["image"]
    assert out.shape == views.shape and out.dtype == torch.uint8
    flat = out.view(6, 3, S, S)
    assert len({tuple(c) for c in centroid(flat, 0).round(decimals=3).tolist()}) == 6


def test_refuses_boxes_and_padding():
    aug = ImageAugment()
    with pytest.raises(ValueError, match="detr_augment"):
        aug({"image": blobs(), "target_boxes": [torch.zeros(1, 4)] * 4}, torch.Generator())
    with pytest.raises(ValueError, match="padded"):
        aug({"image": blobs(), "image_mask": torch.ones(4, S, S, dtype=torch.bool)}, torch.Generator())
    with pytest.raises(KeyError, match="image"):
        aug({"text": torch.ones(2, 3)}, torch.Generator())
    with pytest.raises(ValueError, match="translate"):
        ImageAugment(0.6)


def test_built_from_the_task_config():
    raw = {"tasks": [{"name": "ir", "source": {"kind": "world", "name": "coco-ir"}, "inputs": ["image", "text"],
                      "transforms": [{"kind": "image_augment", "translate": 0.05, "zoom": [0.95, 1.05]}]}]}
    cfg = config_from_dict(raw)
    (aug,) = build_transforms(cfg.tasks[0].transforms)
    assert isinstance(aug, ImageAugment) and aug.translate == 0.05 and aug.zoom == (0.95, 1.05)
    raw["tasks"][0]["transforms"][0]["zoom"] = [1.2, 0.9]
    with pytest.raises(ConfigError, match="zoom must be"):
        config_from_dict(raw)
