import math

import pytest
import torch
import torch.nn.functional as F

from cotrain.config import AudioEncoderConfig
from cotrain.encoders import resample_pos_embed
from cotrain.encoders.audio import AudioEncoder, hz_to_mel, mel_filterbank, mel_to_hz

D = 32


# ------------------------------------------------------------------ mel scale and filterbank
def test_mel_scale_hand_values():
    # HTK: 2595 log10(1 + 1000/700) — 1000 Hz is (almost exactly) 1000 mel
    assert float(hz_to_mel(1000.0)) == pytest.approx(2595 * math.log10(1 + 1000 / 700))
    assert float(hz_to_mel(1000.0)) == pytest.approx(1000.0, abs=0.05)
    assert float(hz_to_mel(0.0)) == 0.0
    # Slaney: 3 mel per 200 Hz below 1 kHz, 27 mel per factor 6.4 above
    assert float(hz_to_mel(500.0, "slaney")) == pytest.approx(7.5)
    assert float(hz_to_mel(1000.0, "slaney")) == pytest.approx(15.0)
    assert float(hz_to_mel(6400.0, "slaney")) == pytest.approx(42.0)
    for scale in ("htk", "slaney"):
        f = torch.tensor([0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0], dtype=torch.float64)
        torch.testing.assert_close(mel_to_hz(hz_to_mel(f, scale), scale), f)
    with pytest.raises(ValueError, match="unknown mel scale"):
        hz_to_mel(1.0, "bark")


def test_filterbank_peaks_at_center_frequencies():
    sr, n_fft, n_mels = 16000, 1024, 40
    fb = mel_filterbank(sr, n_fft, n_mels)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == torch.float32
    assert fb.min() >= 0 and fb.max() <= 1 + 1e-6
    mel_max = 2595 * math.log10(1 + (sr / 2) / 700)
    bin_hz = sr / n_fft
    for m in range(n_mels):
        center = 700 * (10 ** ((m + 1) * mel_max / (n_mels + 1) / 2595) - 1)
        peak_hz = int(fb[m].argmax()) * bin_hz
        # the peak is one of the two bins around the centre (triangles are asymmetric in Hz)
        assert abs(peak_hz - center) < bin_hz, (m, peak_hz, center)
        # and the filter is zero at and beyond its neighbours' centres
        lower = 700 * (10 ** (m * mel_max / (n_mels + 1) / 2595) - 1)
        upper = 700 * (10 ** ((m + 2) * mel_max / (n_mels + 1) / 2595) - 1)
        freqs = torch.arange(n_fft // 2 + 1) * bin_hz
        assert torch.all(fb[m][(freqs <= lower) | (freqs >= upper)] < 1e-6)


def test_filterbank_hand_computed_entry_and_partition_of_unity():
    sr, n_fft, n_mels = 8000, 256, 10
    fb = mel_filterbank(sr, n_fft, n_mels).double()
    edges = [700 * (10 ** (i * (2595 * math.log10(1 + 4000 / 700)) / (n_mels + 1) / 2595) - 1) for i in range(n_mels + 2)]
    # filter 3 at rFFT bin 20 (625 Hz): on the rising or falling slope of edges 3, 4, 5
    f = 20 * sr / n_fft
    lo, c, hi = edges[3], edges[4], edges[5]
    want = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
    assert float(fb[3, 20]) == pytest.approx(want, rel=1e-5)
    # overlapping triangles sum to one between the first and last peak
    freqs = torch.arange(n_fft // 2 + 1) * sr / n_fft
    inside = (freqs >= edges[1]) & (freqs <= edges[n_mels])
    torch.testing.assert_close(fb.sum(0)[inside], torch.ones(int(inside.sum()), dtype=torch.float64), rtol=0, atol=1e-5)
    # Slaney area normalisation: every filter integrates (in Hz) to about 1
    fbs = mel_filterbank(16000, 4096, 20, norm="slaney").double()
    area = fbs.sum(1) * 16000 / 4096
    torch.testing.assert_close(area, torch.ones(20, dtype=torch.float64), rtol=0.02, atol=0)


# ------------------------------------------------------------------ encoder
def _cfg(**kw):
    base = dict(sample_rate=8000, seconds=1.0, n_fft=256, hop_length=128, n_mels=32, patch=(8, 8))
    base.update(kw)
    return AudioEncoderConfig(**base)


def test_audio_shapes_and_buffers():
    e = AudioEncoder(_cfg(), D)
    frames = 1 + 8000 // 128  # 63 → padded to 64
    assert e.grid == (4, 8)
    tokens, mask = e(torch.randn(3, 8000))
    assert tokens.shape == (3, 1 + 4 * 8, D) and mask is None
    assert math.ceil(frames / 8) == 8
    assert "mel_fb" not in e.state_dict() and "window" not in e.state_dict()
    assert dict(e.named_buffers())["mel_fb"].shape == (32, 129)
    with pytest.raises(ValueError, match=r"\[B, S\]"):
        e(torch.randn(3, 1, 8000))


def test_log_mel_sine_lands_in_right_band_and_is_normalised():
    e = AudioEncoder(_cfg(n_mels=32), D)
    t = torch.arange(8000) / 8000
    wave = torch.stack([torch.sin(2 * math.pi * 1000 * t), 0.01 * torch.sin(2 * math.pi * 2500 * t)])
    spec = e.log_mel(wave)
    assert spec.shape == (2, 32, 63)
    torch.testing.assert_close(spec.mean((1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(spec.std((1, 2)), torch.ones(2), atol=1e-3, rtol=0)
    edges = mel_to_hz(torch.linspace(0, float(hz_to_mel(4000.0)), 34))
    centers = edges[1:-1]
    for row, hz in ((0, 1000.0), (1, 2500.0)):
        band = int(spec[row, :, 10:50].mean(-1).argmax())
        assert abs(float(centers[band]) - hz) <= float(centers[band + 1] - centers[band]) / 2 + 1.0
    # amplitude does not matter after per-example normalisation (broadband: far above the 1e-6 floor)
    noise = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(e.log_mel(noise * 7.0), e.log_mel(noise), atol=1e-3, rtol=0)


def test_audio_longer_waveform_resamples_time():
    torch.manual_seed(0)
    e = AudioEncoder(_cfg(), D)
    assert e.pos_embed_for((4, 8)) is e.pos_embed
    tokens, _ = e(torch.randn(2, 16000))  # 2 s: 126 frames → 128 → 16 time patches
    assert tokens.shape == (2, 1 + 4 * 16, D)
    pe = e.pos_embed.detach()
    grid = pe[:, 1:].reshape(1, 4, 8, D).movedim(-1, 1)
    want = F.interpolate(grid, size=(4, 16), mode="bicubic", align_corners=False)
    got = resample_pos_embed(pe, (4, 8), (4, 16))
    torch.testing.assert_close(got[:, 1:].reshape(1, 4, 16, D).movedim(-1, 1), want)
    # shorter too
    assert e(torch.randn(1, 4000))[0].shape == (1, 1 + 4 * 4, D)


def test_audio_gradient_flows_when_waveform_requires_grad():
    e = AudioEncoder(_cfg(), D)
    x = torch.randn(1, 8000, requires_grad=True)
    e(x)[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
