"""``detr_augment``: DETR's training augmentation of a detection batch (Carion et al. 2020, as UniT
trains its detection task): a random horizontal flip and a random resize of each image, the boxes
moved along, and a mask of the real pixels.

Batch in (the shared detection layout, B examples):

- ``image`` ``[B, 3, H, W]`` (uint8 or float);
- ``target_boxes`` (optional): a list of B tensors ``[n_i, 4]``, normalised ``(cx, cy, w, h)``
  relative to the ``H x W`` canvas;
- ``image_mask`` (optional) bool ``[B, H, W]``: True = real pixel; the real pixels must form a
  top-left rectangle (as this transform writes them). Without it the whole canvas is real.

Per example ``b`` (the draws: B flips, then B scales, from the generator, whatever they decide):

1. with probability ``flip_prob`` the real region is mirrored left-right, each box's ``cx`` becoming
   ``w_real / W - cx`` (``1 - cx`` on an unpadded image);
2. the real region ``h x w`` is resized (bilinear, antialiased) to ``round(s h) x round(s w)`` with
   ``s`` uniform in ``[scales[0], scales[1]]`` and placed at the top-left of the canvas, the rest
   zero; box coordinates are scaled along (``cx, w`` by the width ratio, ``cy, h`` by the height's),
   still normalised to the canvas.

Batch out: ``image`` ``[B, 3, H, W]`` (same dtype; integer images rounded), ``target_boxes``, and
``image_mask`` bool ``[B, H, W]``: True exactly on the resized real region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _real_extent(mask: torch.Tensor | None, h: int, w: int) -> tuple[int, int]:
    """``(rows, columns)`` of the top-left real rectangle of one ``[H, W]`` mask (all without one)."""
    if mask is None:
        return h, w
    rows, cols = int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum())
    if not bool(mask[:rows, :cols].all()) or int(mask.sum()) != rows * cols:
        raise ValueError("detr_augment: batch['image_mask'] must mark a top-left rectangle of real pixels")
    return rows, cols


def _resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[3, h, w]`` -> ``[3, size]`` bilinear (antialiased when shrinking), in the input's dtype."""
    if tuple(pixels.shape[-2:]) == size:
        return pixels
    out = F.interpolate(pixels[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    if pixels.dtype.is_floating_point:
        return out.to(pixels.dtype)
    info = torch.iinfo(pixels.dtype)
    return out.round().clamp(info.min, info.max).to(pixels.dtype)


class DetrAugment:
    """``(batch, gen) -> batch``: random flip + resize with padding and ``image_mask`` (module docstring)."""

    def __init__(self, flip_prob: float = 0.5, scales: tuple[float, float] = (0.6, 1.0)) -> None:
        lo, hi = (float(s) for s in scales)
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}")
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scales must be [min, max] with 0 < min <= max <= 1, got {list(scales)}")
        self.flip_prob, self.scales = float(flip_prob), (lo, hi)

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        if "image" not in batch:
            raise KeyError(f"detr_augment needs batch['image']; the batch has {sorted(batch)}")
        image = batch["image"]
        if image.dim() != 4:
            raise ValueError(f"detr_augment: batch['image'] must be [B, 3, H, W], got shape {list(image.shape)}")
        n, _, height, width = image.shape
        flips = (torch.rand(n, generator=gen) < self.flip_prob).tolist()
        lo, hi = self.scales
        scales = (lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)).tolist()
        masks = batch.get("image_mask")
        boxes = batch.get("target_boxes")
        out = torch.zeros_like(image)
        new_mask = torch.zeros(n, height, width, dtype=torch.bool, device=image.device)
        new_boxes = []
        for b in range(n):
            rows, cols = _real_extent(None if masks is None else masks[b], height, width)
            pixels = image[b, :, :rows, :cols]
            box = None if boxes is None else boxes[b].clone()
            if flips[b]:
                pixels = pixels.flip(-1)
                if box is not None:
                    box[:, 0] = cols / width - box[:, 0]
            size = (max(1, round(scales[b] * rows)), max(1, round(scales[b] * cols)))
            out[b, :, : size[0], : size[1]] = _resize(pixels, size)
            new_mask[b, : size[0], : size[1]] = True
            if box is not None:
                box[:, 0::2] *= size[1] / cols
                box[:, 1::2] *= size[0] / rows
                new_boxes.append(box)
        result = {**batch, "image": out, "image_mask": new_mask}
        if boxes is not None:
            result["target_boxes"] = new_boxes
        return result


__all__ = ["DetrAugment"]
