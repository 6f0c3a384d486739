"""Region proposals and their crop features: the world's stand-in for bottom-up Faster R-CNN regions.

**Proposals** of a scene (a fixed function of the scene, like a detector's output, so the same image
gives the same regions in every task): every object's exact box, jittered copies of object boxes
(shifted by up to 30 % of the side and rescaled by 0.75-1.33 per axis; some keep IoU >= 0.5 with their
object, some do not) and a few distractor boxes on the background (IoU < 0.1 with every object where
possible). With ``R = max_regions``: ``min(R - K, max(1, R // 6))`` distractors and
``min(R - K - distractors, 2K)`` jittered boxes for ``K`` objects, all in a seeded shuffled order;
the remaining slots are padding (mask False, zeros).

**Feature** of a region (``REGION_DIM`` = 111 floats, from the crop of the uint8 image):

- ``[0:108]`` the crop area-averaged onto a 6 x 6 grid, RGB, channel-major (``c * 36 + y * 6 + x``),
  scaled to [0, 1];
- ``[108:111]`` the per-channel standard deviation of the crop's pixels, scaled to [0, 1].

Crops use exact area averages of the pixels under fractional boxes, computed from summed-area
tables (bilinear interpolation of the table is exact for a piecewise-constant image), vectorised over
all regions. The normalised box ``x0, y0, x1, y1`` (divided by the image size) goes in ``boxes``.
"""

from __future__ import annotations

import numpy as np

from ..common import MASK63
from ..scene import MAX_OBJECTS, Scene

GRID = 6
REGION_DIM = 3 * GRID * GRID + 3
REGION_SALT = 0x4E610
MIN_REGIONS = MAX_OBJECTS  # every object's box must fit
JITTER_SHIFT = 0.30
JITTER_SCALE = (0.75, 1.33)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a [..., 4]`` and ``b [..., 4]`` (broadcast), 0 where the union is empty."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _clip_boxes(boxes: np.ndarray, size: int, min_side: float = 2.0) -> np.ndarray:
    b = np.clip(boxes, 0.0, float(size))
    for lo, hi in ((0, 2), (1, 3)):  # keep at least min_side, inside the canvas
        short = b[:, hi] - b[:, lo] < min_side
        b[short, hi] = np.minimum(b[short, lo] + min_side, size)
        b[short, lo] = b[short, hi] - min_side
    return b


def distractor_boxes(rng: np.random.Generator, objects: np.ndarray, size: int, count: int) -> np.ndarray:
    """``count`` background boxes (side 15-40 % of the canvas), each chosen among 16 random candidates
    as the first with IoU < 0.1 against every object (else the least overlapping one)."""
    out = np.zeros((count, 4))
    for k in range(count):
        side = rng.uniform(0.15, 0.40, size=(16, 1)) * size * np.exp(rng.uniform(-0.2, 0.2, size=(16, 2)))
        xy = rng.uniform(0.0, 1.0, size=(16, 2)) * (size - side)
        cand = np.concatenate([xy, xy + side], axis=1)
        worst = iou(cand[:, None], objects[None]).max(axis=1) if len(objects) else np.zeros(16)
        ok = np.flatnonzero(worst < 0.1)
        out[k] = cand[ok[0] if len(ok) else int(np.argmin(worst))]
    return out


def scene_proposals(scene: Scene, key: int, max_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Proposals of ``scene``: pixel boxes float64 ``[n, 4]`` and the object each one was made from
    (``[n]`` int64: the object's index for exact and jittered boxes, -1 for distractors), in the
    fixed shuffled order. ``key`` (with the scene's index) seeds the jitter."""
    size = scene.image_size
    objects = scene.boxes().astype(np.float64)
    k = len(objects)
    if max_regions < max(k, MIN_REGIONS):
        raise ValueError(f"max_regions must be at least {MIN_REGIONS}, got {max_regions}")
    rng = np.random.default_rng((REGION_SALT, int(key) & MASK63, int(scene.index or 0) & MASK63, max_regions))
    n_dis = min(max_regions - k, max(1, max_regions // 6))
    n_jit = min(max_regions - k - n_dis, 2 * k) if k else 0
    src = rng.permutation(k)[np.arange(n_jit) % k] if n_jit else np.zeros(0, dtype=np.int64)
    base = objects[src]
    wh = base[:, 2:] - base[:, :2]
    centre = (base[:, :2] + base[:, 2:]) / 2 + rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, size=(n_jit, 2)) * wh
    half = wh * np.exp(rng.uniform(*np.log(JITTER_SCALE), size=(n_jit, 2))) / 2
    jitter = _clip_boxes(np.concatenate([centre - half, centre + half], axis=1), size)
    distract = distractor_boxes(rng, objects, size, n_dis)
    boxes = np.concatenate([objects, jitter, distract])
    source = np.concatenate([np.arange(k), src, np.full(n_dis, -1)]).astype(np.int64)
    order = rng.permutation(len(boxes))
    return boxes[order], source[order]


def summed_area(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed-area tables ``[M, 3, S+1, S+1]`` (float64) of the images and of their squares."""
    x = images.astype(np.float64)
    m, c, h, w = x.shape
    sat = np.zeros((m, c, h + 1, w + 1))
    sat2 = np.zeros((m, c, h + 1, w + 1))
    sat[:, :, 1:, 1:] = x.cumsum(axis=2).cumsum(axis=3)
    sat2[:, :, 1:, 1:] = (x * x).cumsum(axis=2).cumsum(axis=3)
    return sat, sat2


def _sample(sat: np.ndarray, which: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The table at fractional points: ``[T, a, b, C]`` for ``ys [T, a]`` and ``xs [T, b]``."""
    n = sat.shape[-1] - 1
    iy = np.clip(np.floor(ys).astype(np.int64), 0, n - 1)
    ix = np.clip(np.floor(xs).astype(np.int64), 0, n - 1)
    fy, fx = (ys - iy)[:, :, None, None], (xs - ix)[:, None, :, None]
    t = which[:, None, None]
    y0, y1, x0, x1 = iy[:, :, None], iy[:, :, None] + 1, ix[:, None, :], ix[:, None, :] + 1
    return (
        sat[t, :, y0, x0] * (1 - fy) * (1 - fx)
        + sat[t, :, y0, x1] * (1 - fy) * fx
        + sat[t, :, y1, x0] * fy * (1 - fx)
        + sat[t, :, y1, x1] * fy * fx
    )


def crop_features(images: np.ndarray, which: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float32 ``[T, REGION_DIM]`` features of the crops ``boxes [T, 4]`` (pixels) of
    ``images[which]`` (``images`` uint8 ``[M, 3, S, S]``)."""
    which = np.asarray(which, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0, REGION_DIM), dtype=np.float32)
    sat, sat2 = summed_area(images)
    t = np.linspace(0.0, 1.0, GRID + 1)
    xs = boxes[:, :1] + (boxes[:, 2:3] - boxes[:, :1]) * t[None]
    ys = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t[None]
    v = _sample(sat, which, ys, xs)  # [T, 7, 7, 3]
    cells = v[:, 1:, 1:] - v[:, :-1, 1:] - v[:, 1:, :-1] + v[:, :-1, :-1]
    cell_area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / GRID**2)[:, None, None, None]
    means = (cells / cell_area / 255.0).transpose(0, 3, 1, 2).reshape(len(boxes), -1)
    corners_y, corners_x = ys[:, [0, GRID]], xs[:, [0, GRID]]
    s1 = _sample(sat, which, corners_y, corners_x)
    s2 = _sample(sat2, which, corners_y, corners_x)
    area = cell_area[:, 0, 0, 0] * GRID**2
    tot1 = (s1[:, 1, 1] - s1[:, 0, 1] - s1[:, 1, 0] + s1[:, 0, 0]) / area[:, None]
    tot2 = (s2[:, 1, 1] - s2[:, 0, 1] - s2[:, 1, 0] + s2[:, 0, 0]) / area[:, None]
    std = np.sqrt(np.clip(tot2 - tot1 * tot1, 0.0, None)) / 255.0
    return np.clip(np.concatenate([means, std], axis=1), 0.0, 1.0).astype(np.float32)


def pack_regions(
    images: np.ndarray, box_lists: list[np.ndarray], max_regions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``regions [M, R, F]`` float32, ``boxes [M, R, 4]`` float32 (normalised), ``region_mask [M, R]``
    for the pixel boxes ``box_lists[m]`` of ``images[m]`` (at most ``max_regions`` each)."""
    m = len(box_lists)
    size = images.shape[-1]
    counts = np.asarray([len(b) for b in box_lists], dtype=np.int64)
    if m and counts.max() > max_regions:
        raise ValueError(f"{counts.max()} boxes do not fit in max_regions={max_regions}")
    regions = np.zeros((m, max_regions, REGION_DIM), dtype=np.float32)
    boxes = np.zeros((m, max_regions, 4), dtype=np.float32)
    mask = np.arange(max_regions)[None, :] < counts[:, None]
    if m and counts.sum():
        flat = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in box_lists])
        which = np.repeat(np.arange(m), counts)
        regions[mask] = crop_features(images, which, flat)
        boxes[mask] = (flat / size).astype(np.float32)
    return regions, boxes, mask
