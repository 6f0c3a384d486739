"""Image encoder: 2-D patches (ViT), class token, 2-D positional embedding resampled on size change
(the conv-backbone alternative, ``stem: backbone``, is :mod:`cotrain.encoders.backbone`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.config import ImageEncoderConfig
from cotrain.encoders.backbone import downsample_mask
from cotrain.encoders.common import TokenEncoder, check_divisible, normalise_pixels
from cotrain.encoders.stem import build_patch_embed_2d, standardise


class ImageEncoder(TokenEncoder):
    """``x`` uint8 or float ``[B, C, H, W]`` → ``(tokens [B, 1 + (H/p)(W/p), D], None)``.

    uint8 pixels are scaled to [0, 1], float pixels are taken to be in [0, 1]; both are then mapped
    to [-1, 1] (``pixel_norm: fixed``) or standardised per image (``per_example``). Patches are
    embedded by a ``Conv2d`` with kernel = stride = ``patch_size`` (``stem: patch``) or by a conv
    stem with the same output grid (``stem: conv``, see :mod:`cotrain.encoders.stem`). An input
    whose size differs from ``image_size`` gets the positional grid resampled (bicubic).
    ``image_mask`` bool ``[B, H, W]`` (True = real pixel), when given, gives the token mask: a patch
    is real when its top-left pixel is (None: every token is real).
    """

    def __init__(self, cfg: ImageEncoderConfig, dim: int, dropout: float = 0.0) -> None:
        check_divisible("image_size", cfg.image_size, cfg.patch_size, "model.encoders.image.patch_size")
        side = cfg.image_size // cfg.patch_size
        super().__init__(dim, (side, side), dropout)
        self.patch_size = cfg.patch_size
        self.channels = cfg.channels
        self.pixel_norm = cfg.pixel_norm
        self.patch_embed = build_patch_embed_2d(
            cfg.stem, cfg.channels, dim, cfg.patch_size, tuple(cfg.stem_widths), "model.encoders.image"
        )

    def forward(self, x: torch.Tensor, image_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"image input must be [B, {self.channels}, H, W], got {tuple(x.shape)}")
        p = self.patch_size
        h, w = x.shape[-2:]
        check_divisible("image height", h, p, "model.encoders.image.patch_size")
        check_divisible("image width", w, p, "model.encoders.image.patch_size")
        x = normalise_pixels(x)
        if self.pixel_norm == "per_example":
            x = standardise(x, (1, 2, 3))
        x = self.patch_embed(x)  # [B, D, H/p, W/p]
        grid = (h // p, w // p)
        tokens = self.add_cls_and_pos(x.flatten(2).transpose(1, 2), grid)
        if image_mask is None:
            return tokens, None
        if tuple(image_mask.shape) != (x.shape[0], h, w):
            raise ValueError(f"image_mask must be [B, H, W] = {[x.shape[0], h, w]}, got {list(image_mask.shape)}")
        return tokens, F.pad(downsample_mask(image_mask.bool(), grid).flatten(1), (1, 0), value=True)
