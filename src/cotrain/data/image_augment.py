"""``image_augment``: an augmentation of pixels that keeps a caption true (image-text tasks that read
``image``, e.g. retrieval on pixels).

Per image - each view of a ``[B, K, 3, H, W]`` batch on its own - a zoom by ``z`` uniform in
``[zoom[0], zoom[1]]`` about the centre, then a shift by ``(tx, ty)``, each uniform in
``[-translate, translate]`` of the image side (``tx > 0`` moves the content right, ``ty > 0`` down).
Output pixel ``p`` (normalised coordinates in ``[-1, 1]``) samples the input bilinearly at
``(p - 2t) / z`` (``grid_sample``, ``align_corners=False``); a point beyond the border takes the edge
pixel (``padding_mode="border"``), so no black frame appears and the backdrop keeps its tone.

Deliberately no horizontal flip (captions say left and right) and no colour change (captions name
colours). Boxes are not moved: a batch with ``target_boxes`` (detection: use ``detr_augment``) or
with ``image_mask`` (padded images) is refused; region arrays a batch also carries (the world gives
both) are left as they are - use the transform on tasks that read ``image``.

Draws, from the generator, whatever they decide: N = B·K zooms, then N x shifts, then N y shifts.
Batch out: ``image`` of the same shape and dtype (integer images rounded and clamped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ImageAugment:
    """``(batch, gen) -> batch`` with ``image`` zoomed and shifted per image (module docstring)."""

    def __init__(self, translate: float = 0.06, zoom: tuple[float, float] = (0.9, 1.1)) -> None:
        lo, hi = (float(z) for z in zoom)
        if not 0.0 <= translate < 0.5:
            raise ValueError(f"translate must lie in [0, 0.5), got {translate}")
        if not 0.0 < lo <= hi:
            raise ValueError(f"zoom must be [min, max] with 0 < min <= max, got {list(zoom)}")
        self.translate, self.zoom = float(translate), (lo, hi)

    def theta(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The ``[n, 2, 3]`` affine maps (output → input coordinates) of ``n`` images' draws."""
        lo, hi = self.zoom
        z = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
        shift = (2 * torch.rand(2, n, generator=gen, dtype=torch.float64) - 1) * self.translate * 2  # normalised units
        theta = torch.zeros(n, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / z
        theta[:, 0, 2], theta[:, 1, 2] = -shift[0] / z, -shift[1] / z
        return theta

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        if "image" not in batch:
            raise KeyError(f"image_augment needs batch['image']; the batch has {sorted(batch)}")
        for key, why in (("target_boxes", "it does not move boxes; use detr_augment for detection"),
                         ("image_mask", "it does not handle padded images")):
            if key in batch:
                raise ValueError(f"image_augment: the batch has {key!r}, but {why}")
        image = batch["image"]
        if image.dim() not in (4, 5) or image.shape[-3] < 1:
            raise ValueError(f"image_augment: batch['image'] must be [B, 3, H, W] or [B, K, 3, H, W], got "
                             f"{list(image.shape)}")
        flat = image.reshape(-1, *image.shape[-3:])
        theta = self.theta(len(flat), gen).to(device=image.device, dtype=torch.float32)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        out = F.grid_sample(flat.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        if not image.dtype.is_floating_point:
            info = torch.iinfo(image.dtype)
            out = out.round().clamp(info.min, info.max)
        return {**batch, "image": out.to(image.dtype).reshape(image.shape)}


__all__ = ["ImageAugment"]
