"""Patch embedding for pixels: one linear map per patch (ViT), or a small convolutional stem.

The conv stem ("early convolutions", Xiao et al. 2021; UniT also puts a conv backbone before its
image encoder) runs ``len(widths)`` 3x3 convolutions of stride 2 with GELU, then one convolution
with kernel = stride = the remaining patch factor, so the token grid is the same as the plain
patch embedding's. For video the stride-2 layers work on each frame (kernel ``1x3x3``) and the
last layer embeds ``tubelet[0]`` frames together.
"""

from __future__ import annotations

import torch
from torch import nn


def _stem_layers(conv, channels: int, widths: tuple[int, ...], spatial_k, spatial_s, spatial_p) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    c = channels
    for w in widths:
        layers += [conv(c, w, kernel_size=spatial_k, stride=spatial_s, padding=spatial_p), nn.GELU()]
        c = w
    return layers, c


def stem_reduction(widths: tuple[int, ...]) -> int:
    """Spatial down-sampling of the stride-2 layers: ``2 ** len(widths)``."""
    return 2 ** len(widths)


def check_stem(patch: tuple[int, ...], widths: tuple[int, ...], key: str) -> None:
    r = stem_reduction(widths)
    bad = [p for p in patch if p % r]
    if bad:
        raise ValueError(
            f"{key}: a conv stem with {len(widths)} stride-2 layers needs spatial patch sizes that are "
            f"multiples of {r}; got {patch}"
        )


def build_patch_embed_2d(kind: str, channels: int, dim: int, patch: int, widths: tuple[int, ...], key: str) -> nn.Module:
    """``[B, C, H, W]`` → ``[B, D, H/patch, W/patch]``."""
    if kind == "patch":
        return nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
    if kind != "conv":
        raise ValueError(f"{key}.stem must be 'patch' or 'conv', got {kind!r}")
    check_stem((patch,), widths, key)
    layers, c = _stem_layers(nn.Conv2d, channels, widths, 3, 2, 1)
    rest = patch // stem_reduction(widths)
    layers.append(nn.Conv2d(c, dim, kernel_size=rest, stride=rest))
    return nn.Sequential(*layers)


def build_patch_embed_3d(
    kind: str, channels: int, dim: int, tubelet: tuple[int, int, int], widths: tuple[int, ...], key: str
) -> nn.Module:
    """``[B, C, T, H, W]`` → ``[B, D, T/t, H/h, W/w]`` for ``tubelet = (t, h, w)``."""
    if kind == "patch":
        return nn.Conv3d(channels, dim, kernel_size=tubelet, stride=tubelet)
    if kind != "conv":
        raise ValueError(f"{key}.stem must be 'patch' or 'conv', got {kind!r}")
    t, h, w = tubelet
    check_stem((h, w), widths, key)
    layers, c = _stem_layers(nn.Conv3d, channels, widths, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    r = stem_reduction(widths)
    rest = (t, h // r, w // r)
    layers.append(nn.Conv3d(c, dim, kernel_size=rest, stride=rest))
    return nn.Sequential(*layers)


def standardise(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-3) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over ``dims`` of each example (per-example pixel normalisation)."""
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)
