"""Region-proposal encoder (ViLBERT's image embedding): bottom-up-style region features and their
boxes → tokens, with a whole-image ``IMG`` token first.

Each region ``i`` becomes ``LayerNorm(W_f f_i + W_b [x0, y0, x1, y1, area])`` (then dropout), with
boxes normalised to [0, 1] by the image size and ``area = (x1 - x0)(y1 - y0)``. The ``IMG`` token
is built the same way from the mean of the *real* regions' features and the whole-image box
``(0, 0, 1, 1, 1)``, as ViLBERT's feature readers prepend it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import RegionEncoderConfig
from cotrain.trunks.layers import init_vit_weights


def box_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` boxes ``x0, y0, x1, y1`` → ``[..., 5]`` with the box area appended."""
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return torch.cat([boxes, area.unsqueeze(-1)], dim=-1)


class RegionEncoder(nn.Module):
    """``(features [B, R, F], boxes [B, R, 4], mask [B, R] bool) -> (tokens [B, 1+R, D], mask [B, 1+R])``.

    ``mask`` is True for a real proposal (None: all real); the output mask has True prepended for
    ``IMG``. Padded slots are zeroed before embedding, so whatever they hold (even NaN) cannot
    leak into the real tokens. An example with no real region gets a zero ``IMG`` feature.
    ``R`` may not exceed ``cfg.max_regions``.
    """

    def __init__(self, cfg: RegionEncoderConfig, feature_dim: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"region feature_dim must be at least 1, got {feature_dim}")
        self.feature_dim = feature_dim
        self.max_regions = cfg.max_regions
        self.dim = dim
        self.feat_proj = nn.Linear(feature_dim, dim)
        self.box_proj = nn.Linear(5, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.apply(init_vit_weights)

    def _check(self, features: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor | None) -> None:
        if features.dim() != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"region features must be [B, R, {self.feature_dim}] (model.encoders.regions.feature_dim), "
                f"got {tuple(features.shape)}"
            )
        if boxes.shape != features.shape[:2] + (4,):
            raise ValueError(f"boxes must be [B, R, 4] = {tuple(features.shape[:2]) + (4,)}, got {tuple(boxes.shape)}")
        if mask is not None and mask.shape != features.shape[:2]:
            raise ValueError(f"region_mask must be [B, R] = {tuple(features.shape[:2])}, got {tuple(mask.shape)}")
        if features.shape[1] > self.max_regions:
            raise ValueError(
                f"{features.shape[1]} regions exceed max_regions {self.max_regions} (model.encoders.regions.max_regions)"
            )

    def forward(
        self, features: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(features, boxes, mask)
        features = features.to(self.feat_proj.weight.dtype)  # stores keep float16 features
        b, r, _ = features.shape
        if mask is None:
            mask = torch.ones(b, r, dtype=torch.bool, device=features.device)
        mask = mask.bool()
        real = mask.unsqueeze(-1)
        features = torch.where(real, features, torch.zeros((), dtype=features.dtype, device=features.device))
        boxes = torch.where(real, boxes.to(features.dtype), torch.zeros((), dtype=features.dtype, device=features.device))
        count = real.sum(dim=1).clamp_min(1).to(features.dtype)  # [B, 1]
        img_feat = features.sum(dim=1) / count  # [B, F]
        img_box = features.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(b, 4)
        feats = torch.cat([img_feat.unsqueeze(1), features], dim=1)  # [B, 1+R, F]
        geom = box_geometry(torch.cat([img_box.unsqueeze(1), boxes], dim=1))  # [B, 1+R, 5]
        tokens = self.drop(self.norm(self.feat_proj(feats) + self.box_proj(geom)))
        return tokens, F.pad(mask, (1, 0), value=True)
