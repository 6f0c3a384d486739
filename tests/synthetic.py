"""Tiny learnable synthetic tasks and tiny configs (no world generation needed)."""

from __future__ import annotations

import numpy as np

from cotrain.config import config_from_dict
from cotrain.data.arrays import Split, TaskData

SHAPES = {"image": (3, 16, 16), "video": (4, 3, 16, 16), "audio": (4000,)}


def synthetic_split(modality: str, n: int, classes: int, rng: np.random.Generator) -> Split:
    """Class k is encoded in brightness (image/video) or pitch (audio), plus noise."""
    y = rng.integers(0, classes, n).astype(np.int64)
    if modality == "audio":
        t = np.arange(SHAPES["audio"][0]) / 8000
        freq = 300 + 250 * y[:, None]
        x = (np.sin(2 * np.pi * freq * t) + 0.3 * rng.standard_normal((n, len(t)))).astype(np.float32)
    else:
        base = (40 + 180 * y / max(classes - 1, 1)).reshape((n,) + (1,) * len(SHAPES[modality]))
        x = np.clip(base + rng.normal(0, 20, (n, *SHAPES[modality])), 0, 255).astype(np.uint8)
    return Split({modality: x, "label": y})


def synthetic_task(name: str, modality: str, classes: int = 3, n: int = 96, seed: int = 0) -> TaskData:
    rng = np.random.default_rng(seed)
    splits = [synthetic_split(modality, m, classes, rng) for m in (n, 48, 48)]
    return TaskData(name, [f"c{i}" for i in range(classes)], *splits,
                    sample_rate=8000 if modality == "audio" else None)


def tiny_cfg(tmp_path, tasks=("img", "aud"), **sections):
    """A small experiment over synthetic tasks named ``img``/``vid``/``aud`` (sources are placeholders)."""
    raw = {
        "name": "tiny",
        "tasks": [{"name": t, "inputs": [MODALITY_OF[t]], "source": {"kind": "world", "name": "shapes"}, "batch_size": 16}
                  for t in tasks],
        "model": {"dim": 32, "depth": 2, "num_heads": 2,
                  "encoders": {"image": {"image_size": 16, "patch_size": 8},
                               "video": {"frames": 4, "image_size": 16, "tubelet": [2, 8, 8]},
                               "audio": {"sample_rate": 8000, "seconds": 0.5, "n_fft": 128, "hop_length": 64,
                                         "n_mels": 32, "patch": [16, 16]}}},
        "schedule": {"kind": "uniform"},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "run": {"steps": 30, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 10, "log_every": 5, "checkpoint_every": 10},
    }
    for key, val in sections.items():
        raw[key] = {**raw.get(key, {}), **val} if isinstance(val, dict) else val
    return config_from_dict(raw)


MODALITY_OF = {"img": "image", "vid": "video", "aud": "audio"}


def tiny_data(tasks=("img", "aud"), classes: int = 3):
    return {t: synthetic_task(t, MODALITY_OF[t], classes, seed=i) for i, t in enumerate(tasks)}
