"""NumPy rendering of scenes: coverage masks from supersampled coordinate grids, alpha compositing.

Everything is vectorised over pixels; Python only loops over the (at most six) objects of a scene.
Rendering is a pure function of the scene (its background carries the texture and noise seeds).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .scene import Background, Scene, SceneObject

SUPERSAMPLE = 3  # sub-samples per pixel side for anti-aliased coverage


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test of ``shape`` at local coordinates ``u`` (right) and ``v`` (down), both in
    [-1, 1] across the object's box."""
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(au, av) <= 0.86
    if shape == "triangle":  # apex up, base at the bottom
        return (v <= 0.9) & (au <= (v + 1.0) / 1.9)
    if shape == "diamond":
        return au + av <= 1.0
    if shape == "cross":  # a plus sign
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if shape == "star":  # five points, first one up
        r = np.sqrt(u * u + v * v)
        theta = np.arctan2(u, -v)
        t = np.abs(((theta * 5.0 / (2 * np.pi)) % 1.0) - 0.5) * 2.0  # 1 at a point, 0 between
        return r <= 0.42 + 0.58 * t**1.6
    raise ValueError(f"unknown shape {shape!r}")


@lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``[n_out, n_in]`` linear-interpolation matrix from ``n_in`` evenly spread knots to ``n_out``
    pixel centres (edges clamped)."""
    pos = (np.arange(n_out) + 0.5) / n_out * (n_in - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


@lru_cache(maxsize=16)
def _grid(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(image_size) + 0.5) / image_size
    return c[None, :], c[:, None]  # x [1, S], y [S, 1]


def render_background(bg: Background, image_size: int) -> np.ndarray:
    """float32 ``[3, S, S]`` background without noise."""
    coarse = np.random.Generator(np.random.PCG64(bg.texture_seed)).standard_normal((5, 5))
    a = _interp_matrix(image_size, 5)
    blotch = a @ coarse @ a.T  # [S, S], smooth
    x, y = _grid(image_size)
    proj = x * np.cos(bg.stripe_angle) + y * np.sin(bg.stripe_angle)
    stripes = np.cos(2 * np.pi * bg.stripe_freq * proj + bg.stripe_phase)
    lum = bg.blotch_amp * blotch + bg.stripe_amp * stripes
    rgb = np.asarray(bg.rgb, dtype=np.float64)[:, None, None]
    return (rgb + lum[None]).astype(np.float32)


def sensor_noise(bg: Background, shape: tuple[int, ...]) -> np.ndarray:
    """float32 Gaussian noise of std ``bg.noise_std``, fixed by ``bg.noise_seed``."""
    noise = np.random.Generator(np.random.PCG64(bg.noise_seed)).standard_normal(shape, dtype=np.float32)
    noise *= np.float32(bg.noise_std)
    return noise


def paint_object(canvas: np.ndarray, obj: SceneObject, scale: float = 1.0) -> None:
    """Alpha-composite ``obj`` onto a float ``[3, S, S]`` canvas in place (box scaled by ``scale``)."""
    size = canvas.shape[-1]
    x0, y0, x1, y1 = (c * scale for c in obj.box)
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return
    px0, py0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    px1, py1 = min(size, math.ceil(x1)), min(size, math.ceil(y1))
    if px1 <= px0 or py1 <= py0:
        return
    nx, ny = px1 - px0, py1 - py0
    ss = SUPERSAMPLE
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    sub = (np.arange(max(nx, ny) * ss) + 0.5) / ss
    u = ((px0 - cx + sub[: nx * ss]) * (2.0 / w))[None, :]
    v = ((py0 - cy + sub[: ny * ss]) * (2.0 / h))[:, None]
    inside = shape_mask(obj.shape, u, v) & (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    alpha = inside.reshape(ny, ss, nx, ss).sum(axis=(1, 3), dtype=np.float32) * np.float32(1.0 / (ss * ss))
    # gentle shading: brightness gradient across the object
    upix = (np.arange(nx) + (px0 + 0.5 - cx)) * (2.0 / w)
    vpix = (np.arange(ny) + (py0 + 0.5 - cy)) * (2.0 / h)
    gain = (1.0 + obj.shade[0] * upix[None, :] + obj.shade[1] * vpix[:, None]).astype(np.float32)
    colour = np.asarray(obj.rgb, dtype=np.float32)[:, None, None] * gain[None]
    region = canvas[:, py0:py1, px0:px1]
    region += alpha[None] * (colour - region)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def render_scene_float(scene: Scene, image_size: int | None = None) -> np.ndarray:
    size = scene.image_size if image_size is None else int(image_size)
    canvas = render_background(scene.background, size)
    scale = size / scene.image_size
    for obj in scene.objects:
        paint_object(canvas, obj, scale)
    canvas += sensor_noise(scene.background, canvas.shape)
    return canvas


def render_scene(scene: Scene, image_size: int | None = None) -> np.ndarray:
    """uint8 ``[3, S, S]`` picture of ``scene`` (``S`` = ``image_size``, default the scene's own;
    boxes are scaled when they differ)."""
    return to_uint8(render_scene_float(scene, image_size))


def render_scenes(scenes: list[Scene], image_size: int | None = None) -> np.ndarray:
    """uint8 ``[N, 3, S, S]``."""
    if not scenes:
        size = 32 if image_size is None else int(image_size)
        return np.zeros((0, 3, size, size), dtype=np.uint8)
    return np.stack([render_scene(s, image_size) for s in scenes])


# -- digits (sklearn 8x8) -------------------------------------------------------------------------
def digit_axis_weights(image_size: int, start: np.ndarray, extent: np.ndarray, n: int = 8) -> np.ndarray:
    """Bilinear weights ``[B, S, n]`` mapping canvas pixel centres to the ``n`` cells of a digit
    whose edge is at ``start`` and whose length is ``extent`` pixels (both ``[B]``, fractional ok).
    Zero outside the digit."""
    pix = np.arange(image_size, dtype=np.float64) + 0.5
    u = (pix[None, :] - start[:, None]) / extent[:, None] * n - 0.5  # in cell-centre units
    k = np.arange(n, dtype=np.float64)
    # edge cells extend to the digit's outer edges (clamped), nothing beyond them
    inside = (u >= -0.5) & (u <= n - 0.5)
    uc = np.clip(u, 0.0, n - 1.0)
    w = np.clip(1.0 - np.abs(uc[:, :, None] - k[None, None, :]), 0.0, None)
    return np.where(inside[:, :, None], w, 0.0)


def digit_alpha(digit: np.ndarray, image_size: int, x0: np.ndarray, y0: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Coverage ``[B, S, S]`` in [0, 1] of one 8x8 digit (values 0..16) drawn ``B`` times with its
    top-left corner at ``(x0, y0)`` and side ``extent`` pixels."""
    ay = digit_axis_weights(image_size, np.asarray(y0, float), np.asarray(extent, float))
    ax = digit_axis_weights(image_size, np.asarray(x0, float), np.asarray(extent, float))
    d = digit.astype(np.float64) / 16.0
    a = np.einsum("bik,kl,bjl->bij", ay, d, ax)
    return np.clip(a * 1.25, 0.0, 1.0).astype(np.float32)
