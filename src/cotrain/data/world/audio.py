"""The ``sounds`` task: one synthetic sound event per clip (float32 ``[N, S]`` waveforms).

Classes: pure tone, chirp up, chirp down, pulse train, chord (2-3 tones at musical intervals), noise
burst. Random per clip: pitch (log-uniform, 150 Hz .. min(2.4 kHz, 0.4 x sample rate)), onset,
duration (0.2-0.6 s, at most 80 % of the clip), attack/release, peak amplitude (0.2-0.8); the
background holds white noise (std 0.002-0.03) and, in half of the clips, a faint low hum.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .common import balanced_labels, example_rng, loguniform, split_indices, task_seed
from .config import WorldConfig

SOUNDS: tuple[str, ...] = ("tone", "chirp-up", "chirp-down", "pulse-train", "chord", "noise-burst")
CLASS_NAMES = {"sounds": list(SOUNDS)}
INTERVALS = (6 / 5, 5 / 4, 4 / 3, 3 / 2)


def envelope(tau: np.ndarray, dur: float, attack: float, release: float) -> np.ndarray:
    up = np.clip(tau / attack, 0.0, 1.0)
    down = np.clip((dur - tau) / release, 0.0, 1.0)
    return np.where((tau >= 0) & (tau <= dur), np.minimum(up, down), 0.0)


def synth_event(kind: str, rng: np.random.Generator, sample_rate: int, num_samples: int, seconds: float) -> np.ndarray:
    """float64 ``[num_samples]``: one event of ``kind`` (peak-normalised to a random amplitude)."""
    sr = float(sample_rate)
    fmin, fmax = 150.0, min(2400.0, 0.4 * sr)
    dur = min(rng.uniform(0.2, 0.6), 0.8 * seconds)
    onset = rng.uniform(0.0, max(0.0, seconds - dur))
    attack, release = rng.uniform(0.005, 0.03), rng.uniform(0.01, 0.08)
    tau = np.arange(num_samples) / sr - onset  # time since onset
    inside = np.clip(tau, 0.0, dur)
    phase0 = rng.uniform(0.0, 2 * np.pi)
    if kind == "tone":
        f = loguniform(rng, fmin, fmax)
        x = np.sin(2 * np.pi * f * inside + phase0)
        if 2 * f < 0.45 * sr:
            x += rng.uniform(0.0, 0.15) * np.sin(4 * np.pi * f * inside)
    elif kind in ("chirp-up", "chirp-down"):
        ratio = rng.uniform(2.0, 4.0)
        f_lo = loguniform(rng, fmin, fmax / ratio)
        if kind == "chirp-up":
            f0, k = f_lo, np.log(ratio) / dur
        else:
            f0, k = f_lo * ratio, -np.log(ratio) / dur
        # exponential sweep f(t) = f0 exp(k t); phase = 2 pi f0 (exp(k t) - 1) / k
        x = np.sin(2 * np.pi * f0 * np.expm1(k * inside) / k + phase0)
    elif kind == "pulse-train":
        f = loguniform(rng, fmin, fmax)
        rate = rng.uniform(5.0, 12.0)
        duty = rng.uniform(0.25, 0.5)
        cyc = (inside * rate) % 1.0
        gate = np.where(cyc < duty, 0.5 - 0.5 * np.cos(2 * np.pi * cyc / duty), 0.0)
        x = gate * np.sin(2 * np.pi * f * inside + phase0)
    elif kind == "chord":
        n_tones = int(rng.integers(2, 4))
        f = loguniform(rng, fmin, fmax / 1.6 ** (n_tones - 1))
        freqs = [f]
        for _ in range(n_tones - 1):
            freqs.append(freqs[-1] * INTERVALS[int(rng.integers(len(INTERVALS)))])
        x = sum(rng.uniform(0.6, 1.0) * np.sin(2 * np.pi * fr * inside + rng.uniform(0, 2 * np.pi)) for fr in freqs)
    elif kind == "noise-burst":
        noise = rng.standard_normal(num_samples)
        if rng.uniform() < 0.6:  # band-limited: at least an octave wide
            lo = loguniform(rng, 100.0, 0.2 * sr)
            hi = min(0.5 * sr, lo * rng.uniform(2.0, 8.0))
            spec = np.fft.rfft(noise)
            freqs = np.fft.rfftfreq(num_samples, 1.0 / sr)
            spec[(freqs < lo) | (freqs > hi)] = 0.0
            noise = np.fft.irfft(spec, n=num_samples)
        x = noise
    else:
        raise ValueError(f"unknown sound {kind!r}")
    x = x * envelope(tau, dur, attack, release)
    peak = np.max(np.abs(x))
    return x * (rng.uniform(0.2, 0.8) / peak if peak > 0 else 0.0)


def background_noise(rng: np.random.Generator, sample_rate: int, num_samples: int) -> np.ndarray:
    x = rng.standard_normal(num_samples) * rng.uniform(0.002, 0.03)
    if rng.uniform() < 0.5:
        t = np.arange(num_samples) / float(sample_rate)
        x += rng.uniform(0.0, 0.03) * np.sin(2 * np.pi * rng.uniform(50.0, 120.0) * t + rng.uniform(0, 2 * np.pi))
    return x


def generate_sounds(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    ts = task_seed(seed, name)
    idx = split_indices(split, n)
    labels = balanced_labels(ts, idx, len(SOUNDS))
    S = cfg.num_samples
    audio = np.empty((n, S), dtype=np.float32)
    it = zip(idx.tolist(), labels.tolist())
    for row, (index, label) in enumerate(tqdm(it, total=n, desc=f"{name}/{split}", disable=not cfg.progress)):
        rng = example_rng(ts, index)
        x = synth_event(SOUNDS[label], rng, cfg.sample_rate, S, cfg.seconds) + background_noise(rng, cfg.sample_rate, S)
        audio[row] = np.clip(x, -1.0, 1.0)
    return {"audio": audio, "label": labels}
