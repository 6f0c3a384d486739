"""Video encoder: 3-D tubelets (ViViT), class token, (T', H', W') positional embedding resampled
(trilinear) when the number of frames or the frame size changes."""

from __future__ import annotations

import torch

from cotrain.config import VideoEncoderConfig
from cotrain.encoders.common import TokenEncoder, check_divisible, normalise_pixels
from cotrain.encoders.stem import build_patch_embed_3d, standardise


class VideoEncoder(TokenEncoder):
    """``x`` uint8 or float ``[B, T, C, H, W]`` → ``(tokens [B, 1 + T'H'W', D], None)``.

    Tubelets of ``cfg.tubelet = (t, h, w)`` are embedded by a ``Conv3d`` with kernel = stride =
    tubelet (``stem: patch``) or by a per-frame conv stem whose last layer spans ``t`` frames
    (``stem: conv``); ``T' = T/t, H' = H/h, W' = W/w``. Pixels are scaled as in the image encoder;
    ``pixel_norm: per_example`` standardises over the whole clip.
    """

    def __init__(self, cfg: VideoEncoderConfig, dim: int, dropout: float = 0.0) -> None:
        t, h, w = cfg.tubelet
        check_divisible("video frames", cfg.frames, t, "model.encoders.video.tubelet[0]")
        check_divisible("video image_size", cfg.image_size, h, "model.encoders.video.tubelet[1]")
        check_divisible("video image_size", cfg.image_size, w, "model.encoders.video.tubelet[2]")
        super().__init__(dim, (cfg.frames // t, cfg.image_size // h, cfg.image_size // w), dropout)
        self.tubelet = (t, h, w)
        self.channels = cfg.channels
        self.pixel_norm = cfg.pixel_norm
        self.patch_embed = build_patch_embed_3d(
            cfg.stem, cfg.channels, dim, self.tubelet, tuple(cfg.stem_widths), "model.encoders.video"
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(f"video input must be [B, T, {self.channels}, H, W], got {tuple(x.shape)}")
        t, h, w = self.tubelet
        frames, height, width = x.shape[1], x.shape[3], x.shape[4]
        check_divisible("number of video frames", frames, t, "model.encoders.video.tubelet[0]")
        check_divisible("video frame height", height, h, "model.encoders.video.tubelet[1]")
        check_divisible("video frame width", width, w, "model.encoders.video.tubelet[2]")
        x = normalise_pixels(x.transpose(1, 2))  # [B, C, T, H, W]
        if self.pixel_norm == "per_example":
            x = standardise(x, (1, 2, 3, 4))
        x = self.patch_embed(x)  # [B, D, T', H', W']
        grid = (frames // t, height // h, width // w)
        return self.add_cls_and_pos(x.flatten(2).transpose(1, 2), grid), None
