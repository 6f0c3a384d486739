"""Image tasks of the world: ``shapes``, ``count``, ``digits``.

- ``shapes``: 1-3 objects that all have the same shape (random colours, sizes, positions);
  label = that shape (6 classes, :data:`SHAPES`).
- ``count``: 1-6 objects of random shape, colour and size; label = number of objects
  (class names "1".."6", label ``k - 1`` for ``k`` objects).
- ``digits``: a real scikit-learn digit from the split's pool, upscaled to 60-80 % of the canvas,
  tinted with a random bright colour at a random offset on a textured, noisy background; 10 classes.

The scene of example ``row`` of a split is ``make_scene(task_seed(seed, name), SPLIT_OFFSETS[split]
+ row, **scene_params(name, label, image_size))`` -- see :func:`scene_for_example`.
"""

from __future__ import annotations

import colorsys

import numpy as np
from tqdm import tqdm

from .common import SPLIT_OFFSETS, balanced_labels, example_rng, split_indices, task_seed
from .config import WorldConfig
from .digits import DIGIT_NAMES, load_sklearn_digits, pool_draw
from .render import digit_alpha, render_background, render_scene, sensor_noise, to_uint8
from .scene import SHAPES, Scene, make_background, make_scene

COUNT_RANGE = (1, 6)
SHAPES_OBJECTS = (1, 3)

CLASS_NAMES: dict[str, list[str]] = {
    "shapes": list(SHAPES),
    "count": [str(k) for k in range(COUNT_RANGE[0], COUNT_RANGE[1] + 1)],
    "digits": list(DIGIT_NAMES),
}


def scene_params(name: str, label: int, image_size: int) -> dict:
    if name == "shapes":
        return {"image_size": image_size, "n_objects": SHAPES_OBJECTS, "shapes": [SHAPES[int(label)]]}
    if name == "count":
        return {"image_size": image_size, "n_objects": int(label) + COUNT_RANGE[0]}
    raise ValueError(f"task {name!r} has no scene graph")


def scene_for_example(name: str, seed: int, split: str, row: int, image_size: int = 32) -> Scene:
    """Re-create the scene behind example ``row`` of ``split`` of task ``name`` ("shapes" or "count")
    built with ``seed``: nothing but ``(seed, index)`` is needed."""
    ts = task_seed(seed, name)
    index = SPLIT_OFFSETS[split] + int(row)
    label = int(balanced_labels(ts, np.asarray([index]), len(CLASS_NAMES[name]))[0])
    return make_scene(ts, index, **scene_params(name, label, image_size))


def generate_scene_task(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    ts = task_seed(seed, name)
    idx = split_indices(split, n)
    labels = balanced_labels(ts, idx, len(CLASS_NAMES[name]))
    images = np.empty((n, 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
    it = zip(idx.tolist(), labels.tolist())
    for row, (index, label) in enumerate(tqdm(it, total=n, desc=f"{name}/{split}", disable=not cfg.progress)):
        scene = make_scene(ts, index, **scene_params(name, label, cfg.image_size))
        images[row] = render_scene(scene)
    return {"image": images, "label": labels}


def random_bright_rgb(rng: np.random.Generator) -> np.ndarray:
    h = rng.uniform(0.0, 1.0)
    s = rng.uniform(0.55, 1.0)
    v = rng.uniform(0.8, 1.0)
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def generate_digits(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    ts = task_seed(seed, name)
    images_8x8, digit_labels = load_sklearn_digits()
    which = pool_draw(ts, split, n)
    size = cfg.image_size
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for row, index in enumerate(tqdm(split_indices(split, n).tolist(), desc=f"{name}/{split}", disable=not cfg.progress)):
        rng = example_rng(ts, index)
        bg = make_background(rng)
        extent = rng.uniform(0.6, 0.8) * size
        x0, y0 = rng.uniform(0.0, size - extent, size=2)
        colour = random_bright_rgb(rng)
        alpha = digit_alpha(images_8x8[which[row]], size, np.asarray([x0]), np.asarray([y0]), np.asarray([extent]))[0]
        canvas = render_background(bg, size)
        canvas += alpha[None] * (colour[:, None, None] - canvas)
        canvas += sensor_noise(bg, canvas.shape)
        out[row] = to_uint8(canvas)
    return {"image": out, "label": digit_labels[which].astype(np.int64), "_digit_index": which.astype(np.int64)}
