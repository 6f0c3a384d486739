"""The conv-backbone image encoder (``model.encoders.image.stem: backbone``): UniT / DETR's image side.

    image [B, 3, H, W] ──▶ residual conv stages (stride s) ──▶ 1x1 conv to D ──▶ tokens [B, (H/s)(W/s), D]
                                                                        + 2-D positions (sine or learned)
                        ──▶ [class token, tokens]  [B, 1 + (H/s)(W/s), D],  mask [B, 1 + (H/s)(W/s)]

The backbone is a small ResNet of our own (no torchvision): one stage per ``backbone_widths``
entry, each ``backbone_blocks`` residual blocks of two 3x3 convolutions with GroupNorm and ReLU;
the first ``log2(backbone_stride)`` stages halve the resolution (their first block has stride 2
and a 1x1 projection shortcut). GroupNorm rather than BatchNorm: an example's features do not
depend on the rest of its batch (multi-task batches are small and of one task at a time).

``image_mask`` bool ``[B, H, W]`` (True = a real pixel; detection augmentation pads a batch to one
size) is downsampled to the feature grid (nearest: a cell is real when its top-left pixel is), and
the token mask is True for the class token and the real cells. DETR's sine positions
(:func:`sine_positions`) are computed over the real area, so a padded image gets the same
positions for its real cells as the image alone. Any input whose sides are multiples of the stride
works: there is no fixed positional grid (the learned positions index a row and a column table of
``image_size / backbone_stride`` entries, so a larger grid is refused).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import ConfigError, ImageEncoderConfig
from cotrain.encoders.common import normalise_pixels, trunc_normal_
from cotrain.encoders.stem import standardise

KEY = "model.encoders.image"


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResidualBlock(nn.Module):
    """``relu(x' + F(x))``: ``F`` = conv3x3(stride) → norm → ReLU → conv3x3 → norm; ``x'`` = ``x``, or a
    strided 1x1 conv + norm when the stride or the width changes. ``[B, C_in, H, W]`` → ``[B, C_out, H/s, W/s]``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out)))
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.norm2.weight)  # each block starts as (nearly) its shortcut: a deep stack trains from step 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.shortcut(x) + self.norm2(self.conv2(y)))


class ConvBackbone(nn.Module):
    """Residual stages: ``[B, C, H, W]`` → ``[B, widths[-1], H/stride, W/stride]``."""

    def __init__(self, channels: int, widths: tuple[int, ...], blocks: int, stride: int) -> None:
        super().__init__()
        downs = stride.bit_length() - 1
        if stride < 1 or stride & (stride - 1) or downs > len(widths):
            raise ConfigError(f"{KEY}.backbone_stride must be a power of two of at most 2 ** len(backbone_widths) "
                              f"= {2 ** len(widths)}; got {stride}")
        self.stride = stride
        layers: list[nn.Module] = []
        c = channels
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(ResidualBlock(c, w, 2 if (j == 0 and i < downs) else 1))
                c = w
        self.layers = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def sine_positions(mask: torch.Tensor, dim: int, temperature: float = 10000.0, eps: float = 1e-6) -> torch.Tensor:
    """DETR's 2-D sine positional encoding: ``mask`` bool ``[B, h, w]`` (True = real) → ``[B, h, w, dim]``.

    ``y`` / ``x`` are the cumulative counts of real cells down each column / along each row,
    normalised by the column's / row's total and scaled to ``(0, 2π]``; with ``n = dim / 2`` and
    ``t_i = temperature ** (2 ⌊i / 2⌋ / n)``, channels ``0..n-1`` are ``sin(y / t_i)`` (even ``i``) /
    ``cos(y / t_i)`` (odd ``i``) and channels ``n..dim-1`` the same of ``x``. ``dim`` must be a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"sine positions need a width that is a multiple of 4, got {dim}")
    if mask.dim() != 3:
        raise ValueError(f"mask must be [B, h, w], got {tuple(mask.shape)}")
    real = mask.to(torch.float32)
    y = real.cumsum(1)
    x = real.cumsum(2)
    scale = 2 * math.pi
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    n = dim // 2
    i = torch.arange(n, dtype=torch.float32, device=mask.device)
    t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / n)  # [n]

    def encode(v: torch.Tensor) -> torch.Tensor:
        v = v[..., None] / t  # [B, h, w, n]
        return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat([encode(y), encode(x)], dim=-1)


def downsample_mask(image_mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W]`` bool → ``[B, h, w]`` bool, nearest (DETR: ``F.interpolate(mask, size)``)."""
    return F.interpolate(image_mask[:, None].float(), size=grid, mode="nearest")[:, 0] > 0.5


class LearnedPositions(nn.Module):
    """DETR's learned alternative: a row and a column table of ``D / 2`` each, ``[h, w, D]`` =
    ``[col(x), row(y)]``; grids up to ``max_grid`` per side."""

    def __init__(self, max_grid: int, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"learned 2-D positions need an even width, got {dim}")
        self.max_grid = max_grid
        self.row = nn.Parameter(torch.empty(max_grid, dim // 2))
        self.col = nn.Parameter(torch.empty(max_grid, dim // 2))
        nn.init.uniform_(self.row)
        nn.init.uniform_(self.col)

    def forward(self, grid: tuple[int, int]) -> torch.Tensor:
        h, w = grid
        if h > self.max_grid or w > self.max_grid:
            raise ValueError(f"a {h}x{w} feature grid exceeds the learned positions' {self.max_grid}x{self.max_grid} "
                             f"({KEY}.image_size / backbone_stride); raise image_size or use backbone_pos: sine")
        return torch.cat([self.col[:w][None].expand(h, -1, -1), self.row[:h][:, None].expand(-1, w, -1)], dim=-1)


class BackboneImageEncoder(nn.Module):
    """``(x uint8 or float [B, C, H, W], image_mask bool [B, H, W] or None)`` →
    ``(tokens [B, 1 + (H/s)(W/s), D], mask [B, 1 + (H/s)(W/s)])``, ``s = backbone_stride``.

    Pixels are normalised as by :class:`~cotrain.encoders.image.ImageEncoder` (``pixel_norm``).
    The class token carries no position."""

    def __init__(self, cfg: ImageEncoderConfig, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if cfg.image_size % cfg.backbone_stride:
            raise ConfigError(f"{KEY}.image_size {cfg.image_size} is not a multiple of backbone_stride {cfg.backbone_stride}")
        if cfg.backbone_pos == "sine" and dim % 4:
            raise ConfigError(f"{KEY}.backbone_pos sine needs model.dim to be a multiple of 4, got {dim}")
        self.dim = dim
        self.channels = cfg.channels
        self.stride = cfg.backbone_stride
        self.pixel_norm = cfg.pixel_norm
        self.backbone = ConvBackbone(cfg.channels, tuple(cfg.backbone_widths), cfg.backbone_blocks, cfg.backbone_stride)
        self.proj = nn.Conv2d(self.backbone.out_channels, dim, kernel_size=1)
        self.pos = LearnedPositions(cfg.image_size // cfg.backbone_stride, dim) if cfg.backbone_pos == "learned" else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.cls_token)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def positions(self, mask: torch.Tensor) -> torch.Tensor:
        """``[B, h, w, D]`` positions of a feature grid whose real cells are ``mask [B, h, w]``."""
        if self.pos is None:
            return sine_positions(mask, self.dim)
        return self.pos(tuple(mask.shape[1:]))[None].expand(mask.shape[0], -1, -1, -1)

    def forward(self, x: torch.Tensor, image_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"image input must be [B, {self.channels}, H, W], got {tuple(x.shape)}")
        b, _, h, w = x.shape
        if h % self.stride or w % self.stride:
            raise ValueError(f"image size {h}x{w} is not a multiple of the backbone stride {self.stride} "
                             f"({KEY}.backbone_stride)")
        if image_mask is not None and tuple(image_mask.shape) != (b, h, w):
            raise ValueError(f"image_mask must be [B, H, W] = {[b, h, w]}, got {list(image_mask.shape)}")
        x = normalise_pixels(x)
        if self.pixel_norm == "per_example":
            x = standardise(x, (1, 2, 3))
        feats = self.proj(self.backbone(x))  # [B, D, h, w]
        grid = (h // self.stride, w // self.stride)
        if image_mask is None:
            mask = torch.ones((b, *grid), dtype=torch.bool, device=x.device)
        else:
            mask = downsample_mask(image_mask.bool(), grid)
        tokens = feats.flatten(2).transpose(1, 2) + self.positions(mask).flatten(1, 2).to(feats.dtype)
        cls = self.cls_token.to(tokens.dtype).expand(b, -1, -1)
        tokens = self.drop(torch.cat([cls, tokens], dim=1))
        return tokens, F.pad(mask.flatten(1), (1, 0), value=True)


__all__ = ["BackboneImageEncoder", "ConvBackbone", "LearnedPositions", "ResidualBlock", "downsample_mask", "sine_positions"]
