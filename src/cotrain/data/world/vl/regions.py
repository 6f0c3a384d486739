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
- ``[108:111]`` per channel, the standard deviation of those 36 cell means (how much the crop
  varies: an object's edge against the background, or a flat patch).

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
    """Boxes ``[..., 4]`` clipped to the canvas, each side at least ``min_side``."""
    b = np.clip(boxes, 0.0, float(size))
    for lo, hi in ((0, 2), (1, 3)):
        short = b[..., hi] - b[..., lo] < min_side
        b[..., hi] = np.where(short, np.minimum(b[..., lo] + min_side, size), b[..., hi])
        b[..., lo] = np.where(short, b[..., hi] - min_side, b[..., lo])
    return b


def region_counts(k: int, max_regions: int) -> tuple[int, int]:
    """(jittered, distractor) proposal counts for a scene of ``k`` objects."""
    if max_regions < max(k, MIN_REGIONS):
        raise ValueError(f"max_regions must be at least {MIN_REGIONS}, got {max_regions}")
    n_dis = min(max_regions - k, max(1, max_regions // 6))
    n_jit = min(max_regions - k - n_dis, 2 * k) if k else 0
    return n_jit, n_dis


def batch_proposals(scenes: list[Scene], key: int, max_regions: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`scene_proposals` of many scenes of one canvas size, vectorised (padded) across scenes;
    each scene's result depends on that scene only."""
    m = len(scenes)
    if m == 0:
        return []
    size = scenes[0].image_size
    k = np.asarray([len(s.objects) for s in scenes])
    counts = [region_counts(int(n), max_regions) for n in k]
    n_jit, n_dis = np.asarray([c[0] for c in counts]), np.asarray([c[1] for c in counts])
    total = k + n_jit + n_dis
    km, jm, dm, tm = max(int(k.max()), 1), max(int(n_jit.max()), 1), max(int(n_dis.max()), 1), int(total.max())
    obj = np.zeros((m, km, 4))
    u_src = np.full((m, km), np.inf)
    u_jit = np.full((m, jm, 4), 0.5)
    u_dis = np.full((m, dm, 16, 5), 0.5)
    u_ord = np.full((m, tm), np.inf)
    for r, s in enumerate(scenes):  # every random number of a scene at once, from its own generator
        kk, jj, dd, tt = int(k[r]), int(n_jit[r]), int(n_dis[r]), int(total[r])
        rng = np.random.default_rng((REGION_SALT, int(key) & MASK63, int(s.index or 0) & MASK63, max_regions))
        u = rng.random(kk + 4 * jj + 80 * dd + tt)
        obj[r, :kk] = s.boxes()
        u_src[r, :kk] = u[:kk]
        u_jit[r, :jj] = u[kk: kk + 4 * jj].reshape(jj, 4)
        u_dis[r, :dd] = u[kk + 4 * jj: kk + 4 * jj + 80 * dd].reshape(dd, 16, 5)
        u_ord[r, :tt] = u[kk + 4 * jj + 80 * dd:]
    rows = np.arange(m)[:, None]
    # jittered copies: objects taken in a seeded order, round robin
    perm = np.argsort(u_src, axis=1, kind="stable")
    src = perm[rows, np.arange(jm)[None, :] % np.maximum(k, 1)[:, None]]
    base = obj[rows, src]
    wh = base[..., 2:] - base[..., :2]
    centre = (base[..., :2] + base[..., 2:]) / 2 + (2 * u_jit[..., :2] - 1) * JITTER_SHIFT * wh
    lo, hi = np.log(JITTER_SCALE)
    half = wh * np.exp(lo + (hi - lo) * u_jit[..., 2:]) / 2
    jitter = _clip_boxes(np.concatenate([centre - half, centre + half], axis=-1), size)
    # distractors: the first of 16 candidates with IoU < 0.1 against every object (else the least bad)
    side = (0.15 + 0.25 * u_dis[..., :1]) * size * np.exp(0.4 * u_dis[..., 1:3] - 0.2)
    xy = u_dis[..., 3:5] * (size - side)
    cand = np.concatenate([xy, xy + side], axis=-1)  # [M, D, 16, 4]
    overlap = iou(cand[:, :, :, None], obj[:, None, None])  # [M, D, 16, K]
    overlap = np.where((np.arange(km)[None, :] < k[:, None])[:, None, None], overlap, 0.0)
    worst = overlap.max(axis=-1)
    ok = worst < 0.1
    choice = np.where(ok.any(axis=-1), ok.argmax(axis=-1), worst.argmin(axis=-1))
    distract = np.take_along_axis(cand, choice[..., None, None], axis=2)[:, :, 0]
    # slots: objects, jittered, distractors; keep the real ones, then shuffle them
    boxes = np.concatenate([obj, jitter, distract], axis=1)
    source = np.concatenate([np.broadcast_to(np.arange(km), (m, km)), src, np.full((m, dm), -1)], axis=1)
    valid = np.concatenate([np.arange(km)[None] < k[:, None], np.arange(jm)[None] < n_jit[:, None],
                            np.arange(dm)[None] < n_dis[:, None]], axis=1)
    slots = np.argsort(~valid, axis=1, kind="stable")
    order = np.argsort(u_ord, axis=1, kind="stable")
    final = np.take_along_axis(slots, order, axis=1)
    out_boxes = np.take_along_axis(boxes, final[..., None], axis=1)
    out_src = np.take_along_axis(source, final, axis=1).astype(np.int64)
    return [(out_boxes[r, : total[r]], out_src[r, : total[r]]) for r in range(m)]


def scene_proposals(scene: Scene, key: int, max_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Proposals of ``scene``: pixel boxes float64 ``[n, 4]`` and the object each one was made from
    (``[n]`` int64: the object's index for exact and jittered boxes, -1 for distractors), in the
    fixed shuffled order. ``key`` (with the scene's index) seeds the jitter."""
    return batch_proposals([scene], key, max_regions)[0]


def summed_area(images: np.ndarray) -> np.ndarray:
    """Summed-area tables ``[M, 3, S+1, S+1]`` of the images (int32: exact integer sums)."""
    m, c, h, w = images.shape
    sat = np.zeros((m, c, h + 1, w + 1), dtype=np.int32)
    sat[:, :, 1:, 1:] = images.astype(np.int32).cumsum(axis=2, dtype=np.int32).cumsum(axis=3, dtype=np.int32)
    return sat


def _sample(sat: np.ndarray, which: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The table at fractional points: ``[T, a, b, C]`` for ``ys [T, a]`` and ``xs [T, b]``."""
    m, c, n1, _ = sat.shape
    n = n1 - 1
    iy = np.clip(np.floor(ys).astype(np.int64), 0, n - 1)
    ix = np.clip(np.floor(xs).astype(np.int64), 0, n - 1)
    fy, fx = (ys - iy)[:, :, None, None], (xs - ix)[:, None, :, None]
    flat = sat.reshape(-1)
    # linear index of (image, channel, y, x) in the flat table
    base = (which[:, None, None, None] * c + np.arange(c)[None, None, None, :]) * (n1 * n1)
    idx = base + iy[:, :, None, None] * n1 + ix[:, None, :, None]
    v00, v01 = flat[idx], flat[idx + 1]
    v10, v11 = flat[idx + n1], flat[idx + n1 + 1]
    return (v00 * (1 - fy) + v10 * fy) * (1 - fx) + (v01 * (1 - fy) + v11 * fy) * fx


def crop_features(images: np.ndarray, which: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float32 ``[T, REGION_DIM]`` features of the crops ``boxes [T, 4]`` (pixels) of
    ``images[which]`` (``images`` uint8 ``[M, 3, S, S]``)."""
    which = np.asarray(which, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0, REGION_DIM), dtype=np.float32)
    sat = summed_area(images)
    t = np.linspace(0.0, 1.0, GRID + 1)
    xs = boxes[:, :1] + (boxes[:, 2:3] - boxes[:, :1]) * t[None]
    ys = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t[None]
    v = _sample(sat, which, ys, xs)  # [T, 7, 7, 3]
    cells = v[:, 1:, 1:] - v[:, :-1, 1:] - v[:, 1:, :-1] + v[:, :-1, :-1]
    cell_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / GRID**2
    means = (cells / (cell_area[:, None, None, None] * 255.0)).transpose(0, 3, 1, 2).reshape(len(boxes), 3, -1)
    std = means.std(axis=2)
    return np.clip(np.concatenate([means.reshape(len(boxes), -1), std], axis=1), 0.0, 1.0).astype(np.float32)


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
