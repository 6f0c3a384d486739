"""Video tasks of the world: ``motion`` and ``moving-digits`` (uint8 ``[N, T, 3, S, S]``).

- ``motion``: one object (random shape, colour, start) moves over the ``T`` frames; label = the kind
  of motion: left, right, up, down (a straight move of 30-45 % of the canvas), grow or shrink (side
  scaled by 1.7-2.1 about a fixed centre). Half of the clips also hold one static distractor object.
  The background texture is static; sensor noise is fresh in every frame. Each frame is a
  :class:`Scene`; :func:`motion_for_example` re-creates them from ``(seed, split, row)``.
- ``moving-digits``: a real scikit-learn digit (40-55 % of the canvas, random bright colour) moving in
  a uniformly random direction by up to 45 % of the canvas; label = the digit. Digit pools as in
  :mod:`.digits`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm import tqdm

from .common import MASK63, SPLIT_OFFSETS, balanced_labels, example_rng, split_indices, task_seed
from .config import WorldConfig
from .digits import DIGIT_NAMES, load_sklearn_digits, pool_draw
from .images import random_bright_rgb
from .render import digit_alpha, paint_object, render_background, sensor_noise, to_uint8
from .scene import COLOUR_NAMES, SHAPES, Scene, free_position, make_background, make_object, size_range

MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "grow", "shrink")
CLASS_NAMES: dict[str, list[str]] = {"motion": list(MOTIONS), "moving-digits": list(DIGIT_NAMES)}


def motion_clip(seed: int, index: int, label: int, frames: int, image_size: int) -> list[Scene]:
    """The ``frames`` scenes of motion clip ``index`` (task seed ``seed``) whose motion is
    ``MOTIONS[label]``."""
    if frames < 2:
        raise ValueError(f"motion needs at least 2 frames, got {frames}")
    S = float(image_size)
    rng = example_rng(seed, index)
    bg = make_background(rng)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    kind = MOTIONS[int(label)]
    t = np.linspace(0.0, 1.0, frames)
    if kind in ("left", "right", "up", "down"):
        side = rng.uniform(0.28, 0.38) * S
        dist = rng.uniform(0.30, 0.45) * S
        along = rng.uniform(0.0, S - side - dist)  # start of the travelled span
        across = rng.uniform(0.0, S - side)
        pos = along + dist * t if kind in ("right", "down") else along + dist * (1.0 - t)
        if kind in ("left", "right"):
            boxes = [(p, across, p + side, across + side) for p in pos]
        else:
            boxes = [(across, p, across + side, p + side) for p in pos]
        sizes = ["large"] * frames
    else:
        small = rng.uniform(0.18, 0.24) * S
        big = min(small * rng.uniform(1.7, 2.1), 0.5 * S)
        cx, cy = rng.uniform(big / 2.0, S - big / 2.0, size=2)
        sides = small + (big - small) * (t if kind == "grow" else 1.0 - t)
        boxes = [(cx - s / 2.0, cy - s / 2.0, cx + s / 2.0, cy + s / 2.0) for s in sides]
        sizes = ["small" if s < 0.28 * S else "large" for s in sides]
    mover = make_object(rng, shape, colour, sizes[0], boxes[0])
    static = []
    if rng.uniform() < 0.5:
        b = np.asarray(boxes)
        span = [np.floor(b[:, 0].min()), np.floor(b[:, 1].min()), np.ceil(b[:, 2].max()), np.ceil(b[:, 3].max())]
        lo, hi = size_range("small", image_size)
        side = int(rng.integers(lo, hi + 1))
        pos = free_position(rng, side, image_size, np.asarray([span], dtype=np.int64), gap=1)
        if pos is not None:
            static.append(
                make_object(
                    rng,
                    SHAPES[int(rng.integers(len(SHAPES)))],
                    COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))],
                    "small",
                    (pos[0], pos[1], pos[0] + side, pos[1] + side),
                )
            )
    scenes = []
    for f in range(frames):
        obj = replace(mover, size=sizes[f], box=tuple(float(v) for v in boxes[f]))
        frame_bg = bg.with_noise_seed((bg.noise_seed + 7919 * (f + 1)) & MASK63)
        scenes.append(Scene(image_size=image_size, background=frame_bg, objects=[obj] + static, seed=seed, index=index))
    return scenes


def motion_for_example(seed: int, split: str, row: int, frames: int = 4, image_size: int = 32) -> tuple[int, list[Scene]]:
    """``(label, frame scenes)`` of example ``row`` of ``split`` of the ``motion`` task built with ``seed``."""
    ts = task_seed(seed, "motion")
    index = SPLIT_OFFSETS[split] + int(row)
    label = int(balanced_labels(ts, np.asarray([index]), len(MOTIONS))[0])
    return label, motion_clip(ts, index, label, frames, image_size)


def render_frames(scenes: list[Scene]) -> np.ndarray:
    """uint8 ``[T, 3, S, S]``; equal to stacking ``render_scene`` of each frame, but the static
    background texture is computed once."""
    size = scenes[0].image_size
    cache: dict[tuple, np.ndarray] = {}
    out = np.empty((len(scenes), 3, size, size), dtype=np.uint8)
    for f, scene in enumerate(scenes):
        bg = scene.background
        key = (bg.rgb, bg.blotch_amp, bg.stripe_amp, bg.stripe_freq, bg.stripe_angle, bg.stripe_phase, bg.texture_seed)
        if key not in cache:
            cache[key] = render_background(bg, size)
        canvas = cache[key].copy()
        for obj in scene.objects:
            paint_object(canvas, obj)
        canvas += sensor_noise(bg, canvas.shape)
        out[f] = to_uint8(canvas)
    return out


def generate_motion(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    ts = task_seed(seed, name)
    idx = split_indices(split, n)
    labels = balanced_labels(ts, idx, len(MOTIONS))
    s = cfg.image_size
    video = np.empty((n, cfg.frames, 3, s, s), dtype=np.uint8)
    it = zip(idx.tolist(), labels.tolist())
    for row, (index, label) in enumerate(tqdm(it, total=n, desc=f"{name}/{split}", disable=not cfg.progress)):
        video[row] = render_frames(motion_clip(ts, index, label, cfg.frames, s))
    return {"video": video, "label": labels}


def generate_moving_digits(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    if cfg.frames < 2:
        raise ValueError(f"moving-digits needs at least 2 frames, got {cfg.frames}")
    ts = task_seed(seed, name)
    images_8x8, digit_labels = load_sklearn_digits()
    which = pool_draw(ts, split, n)
    S, T = cfg.image_size, cfg.frames
    t = np.linspace(0.0, 1.0, T)
    video = np.empty((n, T, 3, S, S), dtype=np.uint8)
    for row, index in enumerate(tqdm(split_indices(split, n).tolist(), desc=f"{name}/{split}", disable=not cfg.progress)):
        rng = example_rng(ts, index)
        bg = make_background(rng)
        extent = rng.uniform(0.40, 0.55) * S
        theta = rng.uniform(0.0, 2 * np.pi)
        c, s = np.cos(theta), np.sin(theta)
        dist = min(rng.uniform(0.25, 0.45) * S, (S - extent) / max(abs(c), abs(s)))
        dx, dy = dist * c, dist * s
        x_start = rng.uniform(max(0.0, -dx), S - extent - max(0.0, dx))
        y_start = rng.uniform(max(0.0, -dy), S - extent - max(0.0, dy))
        colour = random_bright_rgb(rng)
        alpha = digit_alpha(images_8x8[which[row]], S, x_start + dx * t, y_start + dy * t, np.full(T, extent))
        base = render_background(bg, S)
        frames = base[None] + alpha[:, None] * (colour[None, :, None, None] - base[None])
        for f in range(T):
            frames[f] += sensor_noise(bg.with_noise_seed((bg.noise_seed + 7919 * (f + 1)) & MASK63), frames[f].shape)
        video[row] = to_uint8(frames)
    return {"video": video, "label": digit_labels[which].astype(np.int64), "_digit_index": which.astype(np.int64)}
