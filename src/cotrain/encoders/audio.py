"""Audio encoder: log-mel spectrogram computed in torch, cut into (mel, time) patches (AST /
PolyViT style), class token, 2-D positional embedding resampled when the duration changes.

The mel filterbank is built here from the mel formula (HTK by default, Slaney optional) and cached
as a non-persistent buffer, as is the Hann window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import AudioEncoderConfig
from cotrain.encoders.common import TokenEncoder, check_divisible

_SLANEY_F_SP = 200.0 / 3.0  # Hz per mel below 1 kHz
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: torch.Tensor | float, scale: str = "htk") -> torch.Tensor:
    """Hz → mel. ``htk``: 2595·log10(1 + f/700). ``slaney``: linear below 1 kHz, log above."""
    f = torch.as_tensor(freq, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    if scale == "slaney":
        lin = f / _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_MEL + torch.log(f.clamp_min(1e-10) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
        return torch.where(f >= _SLANEY_MIN_LOG_HZ, log, lin)
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_to_hz(mel: torch.Tensor | float, scale: str = "htk") -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(mel, dtype=torch.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "slaney":
        lin = m * _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (m - _SLANEY_MIN_LOG_MEL))
        return torch.where(m >= _SLANEY_MIN_LOG_MEL, log, lin)
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: str = "htk",
    norm: str | None = None,
) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32) over the rFFT bin frequencies.

    Filter ``m`` rises linearly from edge ``m`` to its peak (value 1) at edge ``m+1`` and falls to
    zero at edge ``m+2``, where the ``n_mels + 2`` edges are equally spaced in mel between
    ``f_min`` and ``f_max`` (default: Nyquist). ``norm="slaney"`` scales each filter by
    ``2 / (upper - lower)`` (constant area) instead of peak 1.
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(f_min, scale)), float(hz_to_mel(f_max, scale)), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels, scale)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (center - lower)
    falling = (upper - freqs[None, :]) / (upper - center)
    fb = torch.minimum(rising, falling).clamp_min(0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (upper - lower))
    elif norm is not None:
        raise ValueError(f"unknown mel norm {norm!r}; use None or 'slaney'")
    return fb.to(torch.float32)


class AudioEncoder(TokenEncoder):
    """``x`` float waveform ``[B, S]`` at ``cfg.sample_rate`` → ``(tokens [B, 1+N, D], None)``.

    Log-mel: ``torch.stft`` (Hann window, ``n_fft``, ``hop_length``, centred, reflect padding) →
    power → mel filterbank → ``log(mel + 1e-6)`` → per-example normalisation (zero mean, unit
    std over the whole spectrogram) → the ``[n_mels, frames]`` image, time zero-padded to a multiple
    of ``patch[1]`` → ``Conv2d`` patches of ``patch = (mel, time)``. Frames = ``1 + S // hop``; a
    waveform of another duration gets the positional grid resampled along time.
    """

    def __init__(self, cfg: AudioEncoderConfig, dim: int, dropout: float = 0.0) -> None:
        pm, pt = cfg.patch
        check_divisible("n_mels", cfg.n_mels, pm, "model.encoders.audio.patch[0]")
        if cfg.hop_length < 1 or cfg.n_fft < 2:
            raise ValueError(f"need n_fft >= 2 and hop_length >= 1, got {cfg.n_fft}, {cfg.hop_length}")
        self.n_samples = int(round(cfg.sample_rate * cfg.seconds))
        frames = self.frames_for(self.n_samples, cfg.hop_length)
        super().__init__(dim, (cfg.n_mels // pm, math.ceil(frames / pt)), dropout)
        self.sample_rate = cfg.sample_rate
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.n_mels = cfg.n_mels
        self.patch = (pm, pt)
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_fb", mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels), persistent=False)
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=self.patch, stride=self.patch)

    @staticmethod
    def frames_for(n_samples: int, hop_length: int) -> int:
        return 1 + n_samples // hop_length

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` → normalised log-mel ``[B, n_mels, frames]``."""
        spec = torch.stft(
            wave, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="reflect", return_complex=True
        )
        power = torch.view_as_real(spec).square().sum(-1)  # [B, n_fft//2+1, frames]
        mel = torch.matmul(self.mel_fb, power).add_(1e-6).log_()
        std, mean = torch.std_mean(mel, dim=(1, 2), keepdim=True)
        return (mel - mean) / (std + 1e-5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if x.dim() != 2:
            raise ValueError(f"audio input must be a waveform batch [B, S], got {tuple(x.shape)}")
        if x.shape[1] <= self.n_fft // 2:
            raise ValueError(f"waveform of {x.shape[1]} samples is too short for n_fft={self.n_fft}")
        if not x.is_floating_point():
            x = x.to(torch.float32)
        if x.requires_grad:
            spec = self.log_mel(x)
        else:
            with torch.no_grad():
                spec = self.log_mel(x)
        pm, pt = self.patch
        frames = spec.shape[-1]
        pad = (-frames) % pt
        if pad:
            spec = F.pad(spec, (0, pad))
        x = self.patch_embed(spec.unsqueeze(1))  # [B, D, n_mels/pm, (frames+pad)/pt]
        grid = (self.n_mels // pm, (frames + pad) // pt)
        return self.add_cls_and_pos(x.flatten(2).transpose(1, 2), grid), None
