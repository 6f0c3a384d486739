"""``detr_augment``: flipped boxes sit on the flipped pixels, resized boxes cover their objects'
pixels, the mask marks exactly the resized content, draws are fixed by the generator, and the
transform is reachable from a config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cotrain.config import ConfigError, TransformConfig, config_from_dict
from cotrain.data.detr_augment import DetrAugment
from cotrain.data.transforms import build_transforms
from cotrain.data.world import build_world_task

H, W = 24, 32


def rect_batch() -> dict:
    """Two images on a black canvas: bright rectangles at known pixel boxes (x0, y0, x1, y1), the
    second image's rectangles in other colours; boxes as normalised cxcywh."""
    pixel_boxes = [[(2, 3, 8, 11), (20, 14, 30, 22)], [(12, 1, 18, 5)]]
    image = torch.zeros(2, 3, H, W, dtype=torch.uint8)
    boxes = []
    for b, rects in enumerate(pixel_boxes):
        for k, (x0, y0, x1, y1) in enumerate(rects):
            image[b, k, y0:y1, x0:x1] = 250
        r = torch.tensor(rects, dtype=torch.float32)
        boxes.append(torch.stack([(r[:, 0] + r[:, 2]) / 2 / W, (r[:, 1] + r[:, 3]) / 2 / H,
                                  (r[:, 2] - r[:, 0]) / W, (r[:, 3] - r[:, 1]) / H], dim=1))
    return {"image": image, "target_boxes": boxes, "label": torch.tensor([0, 1])}


def pixel_box(box: torch.Tensor, h: int = H, w: int = W) -> tuple[float, float, float, float]:
    cx, cy, bw, bh = box.tolist()
    return (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h


def bright(channel: torch.Tensor, level: int = 60) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(channel.numpy() > level)
    return xs, ys


def test_a_flipped_box_sits_on_the_flipped_pixels():
    batch = rect_batch()
    out = DetrAugment(flip_prob=1.0, scales=(1.0, 1.0))(batch, torch.Generator().manual_seed(0))
    assert out["image_mask"].all()  # nothing resized: every pixel real
    torch.testing.assert_close(out["image"], batch["image"].flip(-1))
    for b in range(2):
        for k, box in enumerate(out["target_boxes"][b]):
            x0, y0, x1, y1 = pixel_box(box)
            xs, ys = bright(out["image"][b, k])
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((x0, y0, x1, y1), abs=1e-4)
        torch.testing.assert_close(out["target_boxes"][b][:, 0], 1 - batch["target_boxes"][b][:, 0])
    assert out["label"] is batch["label"]  # other arrays pass through


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_resized_boxes_cover_their_objects_and_the_mask_marks_the_content(flip):
    batch = rect_batch()
    aug = DetrAugment(flip_prob=flip, scales=(0.4, 0.8))
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        out = aug(batch, gen)
        for b in range(2):
            mask = out["image_mask"][b]
            rows, cols = int(mask.any(1).sum()), int(mask.any(0).sum())
            assert mask[:rows, :cols].all() and mask.sum() == rows * cols and rows < H and cols < W
            assert rows / H == pytest.approx(cols / W, abs=0.05)  # one factor for both sides
            assert (out["image"][b][:, ~mask] == 0).all()  # padding is zero
            for k, box in enumerate(out["target_boxes"][b]):
                x0, y0, x1, y1 = pixel_box(box)
                assert 0 <= x0 < x1 <= cols + 1e-4 and 0 <= y0 < y1 <= rows + 1e-4  # inside the content
                xs, ys = bright(out["image"][b, k], level=140)  # mostly the object: centres in the box
                assert len(xs) and xs.min() + 0.5 >= x0 and xs.max() + 0.5 <= x1
                assert ys.min() + 0.5 >= y0 and ys.max() + 0.5 <= y1
                assert xs.max() - xs.min() + 1 >= x1 - x0 - 1.5 and ys.max() - ys.min() + 1 >= y1 - y0 - 1.5  # tight
                faint_x, faint_y = bright(out["image"][b, k], level=5)  # anything of it: at most a pixel out
                assert faint_x.min() >= np.floor(x0) - 1 and faint_x.max() + 1 <= np.ceil(x1) + 1
                assert faint_y.min() >= np.floor(y0) - 1 and faint_y.max() + 1 <= np.ceil(y1) + 1


def test_draws_are_fixed_by_the_generator_and_vary_with_it():
    batch = rect_batch()
    aug = DetrAugment(flip_prob=0.5, scales=(0.5, 1.0))
    a = aug(batch, torch.Generator().manual_seed(7))
    b = aug(batch, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a["image"], b["image"])
    torch.testing.assert_close(a["image_mask"], b["image_mask"])
    for x, y in zip(a["target_boxes"], b["target_boxes"]):
        torch.testing.assert_close(x, y)
    outs = [aug(batch, torch.Generator().manual_seed(s))["image_mask"].sum().item() for s in range(6)]
    assert len(set(outs)) > 1
    assert torch.equal(batch["image"], rect_batch()["image"])  # the input batch is left alone
    torch.testing.assert_close(batch["target_boxes"][0], rect_batch()["target_boxes"][0])


def test_flip_odds_follow_flip_prob():
    image = torch.zeros(400, 3, 4, 4, dtype=torch.uint8)
    image[:, :, :, 0] = 255  # a bright left column: flipped images have it on the right
    out = DetrAugment(flip_prob=0.3, scales=(1.0, 1.0))({"image": image}, torch.Generator().manual_seed(1))
    flipped = (out["image"][:, 0, 0, 3] == 255).float().mean().item()
    assert 0.22 < flipped < 0.38
    assert "target_boxes" not in out


def test_an_existing_mask_limits_the_flip_and_resize_to_the_real_pixels():
    batch = rect_batch()
    first = DetrAugment(flip_prob=0.0, scales=(0.5, 0.5))(batch, torch.Generator().manual_seed(0))
    assert first["image_mask"][0].sum() == 12 * 16
    again = DetrAugment(flip_prob=1.0, scales=(1.0, 1.0))(first, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again["image_mask"], first["image_mask"])  # stays in the 12 x 16 corner
    torch.testing.assert_close(again["image"][:, :, :12, :16], first["image"][:, :, :12, :16].flip(-1))
    torch.testing.assert_close(again["target_boxes"][0][:, 0], 0.5 - first["target_boxes"][0][:, 0])
    bad = {**batch, "image_mask": torch.ones(2, H, W, dtype=torch.bool)}
    bad["image_mask"][0, 0, 5] = False
    with pytest.raises(ValueError, match="top-left rectangle"):
        DetrAugment()(bad, torch.Generator().manual_seed(0))


def test_on_a_detect_batch_boxes_stay_normalised_and_cover_the_objects():
    td = build_world_task("detect", n_train=8, n_val=1, n_test=1, seed=0, cache_dir=None, image_size=48)
    batch = td.train.take(np.arange(8))
    out = DetrAugment(scales=(0.6, 1.0))(batch, torch.Generator().manual_seed(3))
    assert out["image"].dtype == torch.uint8 and out["image"].shape == batch["image"].shape
    assert out["image_mask"].shape == (8, 48, 48) and out["image_mask"].dtype == torch.bool
    for b in range(8):
        boxes = out["target_boxes"][b]
        assert boxes.shape == batch["target_boxes"][b].shape
        rows = int(out["image_mask"][b].any(1).sum())
        scale = rows / 48
        torch.testing.assert_close(boxes[:, 2:], batch["target_boxes"][b][:, 2:] * scale, atol=0.012, rtol=0)
        assert (boxes[:, :2] - boxes[:, 2:] / 2 >= -1e-6).all() and (boxes[:, :2] + boxes[:, 2:] / 2 <= scale + 1e-4).all()


def test_config_builds_it_and_checks_its_keys():
    (aug,) = build_transforms([TransformConfig(kind="detr_augment", flip_prob=0.2, scales=[0.5, 0.9])])
    assert isinstance(aug, DetrAugment) and aug.flip_prob == 0.2 and aug.scales == (0.5, 0.9)
    default = TransformConfig(kind="detr_augment")
    assert default.flip_prob == 0.5 and default.scales == [0.6, 1.0]
    for scales in ([0.8, 0.5], [0.0, 1.0], [0.5, 1.2], [0.5]):
        with pytest.raises(ConfigError, match=r"transforms\[0\]\.scales"):
            config_from_dict({"tasks": [{"name": "t", "source": {"kind": "world", "name": "detect"},
                                         "transforms": [{"kind": "detr_augment", "scales": scales}]}]})
    with pytest.raises(ConfigError, match="flip_prob"):
        config_from_dict({"tasks": [{"name": "t", "source": {"kind": "world", "name": "detect"},
                                     "transforms": [{"kind": "detr_augment", "flip_prob": 1.5}]}]})
