"""Scene graphs of the procedural world: objects with attributes and boxes on a textured background.

A scene is drawn from ``np.random.default_rng((SCENE_SALT, seed, index))`` alone, so
``make_scene(seed, index, **params)`` re-creates it exactly without storing anything. Everything the
renderer needs (jittered colours, shading, background texture and noise seeds) lives in the scene, so
``render_scene(scene, image_size)`` is a pure function of the scene.

Coordinates: pixels of a ``image_size`` x ``image_size`` canvas, x to the right, y downwards.
A box is ``(x0, y0, x1, y1)`` with the object covering ``x0 <= x < x1`` and ``y0 <= y < y1``
(pixel *edges*, so ``x1 - x0`` is the width). Boxes from :func:`make_scene` are whole pixels; boxes
of moving objects (video frames) may be fractional.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 45),
    "green": (45, 185, 65),
    "blue": (55, 95, 235),
    "yellow": (235, 215, 45),
    "purple": (155, 65, 205),
    "cyan": (45, 205, 215),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SIZES: tuple[str, ...] = ("small", "large")
# Side length of an object as a fraction of the canvas side: (low, high), both inclusive after rounding.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.19, 0.25), "large": (0.32, 0.40)}

SCENE_SALT = 0x5CE2E
MAX_OBJECTS = 6


@dataclass(frozen=True)
class Background:
    """A lightly textured background: base colour + low-frequency blotches + faint stripes, then
    Gaussian sensor noise (added after the objects). ``texture_seed`` and ``noise_seed`` fix the
    random fields, so video frames share the texture but not the noise."""

    rgb: tuple[float, float, float]
    blotch_amp: float
    stripe_amp: float
    stripe_freq: float  # cycles per canvas side
    stripe_angle: float  # radians
    stripe_phase: float
    noise_std: float
    texture_seed: int
    noise_seed: int

    def with_noise_seed(self, noise_seed: int) -> "Background":
        return replace(self, noise_seed=int(noise_seed))


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str  # "small" | "large"
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (edges; end exclusive)
    rgb: tuple[int, int, int]  # the colour actually painted (the named colour, jittered)
    shade: tuple[float, float] = (0.0, 0.0)  # relative brightness gradient along x and y

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def moved(self, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0) -> "SceneObject":
        """A copy shifted by ``(dx, dy)`` and scaled by ``scale`` about its centre."""
        cx, cy = self.center
        hw, hh = self.width * scale / 2.0, self.height * scale / 2.0
        return replace(self, box=(cx + dx - hw, cy + dy - hh, cx + dx + hw, cy + dy + hh))

    def describe(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass
class Scene:
    """Objects (non-overlapping, inside the canvas) on a background."""

    image_size: int
    background: Background
    objects: list[SceneObject] = field(default_factory=list)
    seed: int | None = None
    index: int | None = None

    def __len__(self) -> int:
        return len(self.objects)

    # -- relations (image coordinates: y grows downwards) -----------------------------------------
    def left_of(self, i: int, j: int) -> bool:
        """Object ``i``'s centre is left of object ``j``'s centre."""
        return self.objects[i].center[0] < self.objects[j].center[0]

    def right_of(self, i: int, j: int) -> bool:
        return self.objects[i].center[0] > self.objects[j].center[0]

    def above(self, i: int, j: int) -> bool:
        """Object ``i``'s centre is above (smaller y than) object ``j``'s centre."""
        return self.objects[i].center[1] < self.objects[j].center[1]

    def below(self, i: int, j: int) -> bool:
        return self.objects[i].center[1] > self.objects[j].center[1]

    def relations(self) -> list[tuple[int, str, int]]:
        """All ordered pairs with the relations that hold: ``(i, "left_of" | "right_of" | "above" |
        "below", j)``."""
        out = []
        for i in range(len(self.objects)):
            for j in range(len(self.objects)):
                if i == j:
                    continue
                for name in ("left_of", "right_of", "above", "below"):
                    if getattr(self, name)(i, j):
                        out.append((i, name, j))
        return out

    def find(self, shape: str | None = None, colour: str | None = None, size: str | None = None) -> list[int]:
        """Indices of objects matching every given attribute."""
        return [
            k
            for k, o in enumerate(self.objects)
            if (shape is None or o.shape == shape)
            and (colour is None or o.colour == colour)
            and (size is None or o.size == size)
        ]

    def boxes(self) -> np.ndarray:
        """``[K, 4]`` float32 boxes (x0, y0, x1, y1) in pixels."""
        return np.asarray([o.box for o in self.objects], dtype=np.float32).reshape(-1, 4)

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def size_range(size: str, image_size: int) -> tuple[int, int]:
    """Inclusive side-length range in pixels of an object of ``size`` on a canvas of ``image_size``."""
    lo, hi = SIZE_RANGES[size]
    a = max(3, int(round(lo * image_size)))
    return a, max(a, int(round(hi * image_size)))


BACKGROUND_GREY: tuple[float, float] = (45.0, 110.0)  # the default range of a background's grey level


def make_background(rng: np.random.Generator, grey: tuple[float, float] = BACKGROUND_GREY) -> Background:
    """A random background (grey-ish with a tint, so every palette colour stands out): its grey level
    is uniform in ``grey`` (the same random draws for any range, so the default gives the same
    backgrounds as before the range could be chosen)."""
    grey = rng.uniform(float(grey[0]), float(grey[1]))
    tint = rng.uniform(-12.0, 12.0, size=3)
    rgb = tuple(float(v) for v in np.clip(grey + tint, 0, 255))
    seeds = rng.integers(0, 2**62, size=2)
    return Background(
        rgb=rgb,  # type: ignore[arg-type]
        blotch_amp=float(rng.uniform(4.0, 14.0)),
        stripe_amp=float(rng.uniform(0.0, 6.0)),
        stripe_freq=float(rng.uniform(2.0, 7.0)),
        stripe_angle=float(rng.uniform(0.0, np.pi)),
        stripe_phase=float(rng.uniform(0.0, 2 * np.pi)),
        noise_std=float(rng.uniform(2.0, 6.0)),
        texture_seed=int(seeds[0]),
        noise_seed=int(seeds[1]),
    )


def jitter_colour(rng: np.random.Generator, colour: str, amount: float = 22.0) -> tuple[int, int, int]:
    rgb = np.clip(np.add(COLOURS[colour], rng.uniform(-amount, amount, size=3)), 0, 255)
    return tuple(np.rint(rgb).astype(int).tolist())  # type: ignore[return-value]


def make_object(rng: np.random.Generator, shape: str, colour: str, size: str, box) -> SceneObject:
    rgb = jitter_colour(rng, colour)
    shade = rng.uniform(-0.15, 0.15, size=2).tolist()
    return SceneObject(
        shape=shape,
        colour=colour,
        size=size,
        box=tuple(float(v) for v in box),  # type: ignore[arg-type]
        rgb=rgb,
        shade=(shade[0], shade[1]),
    )


def free_position(
    rng: np.random.Generator,
    side: int,
    image_size: int,
    taken: np.ndarray,
    gap: int = 1,
    tries: int = 4,
    candidates: int = 48,
) -> tuple[int, int] | None:
    """A top-left corner for a ``side`` x ``side`` box inside the canvas that keeps ``gap`` pixels
    from every box in ``taken`` (``[K, 4]``), or None. Candidates are tested in a vectorised batch."""
    hi = image_size - side
    if hi < 0:
        return None
    for _ in range(tries):
        xy = rng.integers(0, hi + 1, size=(candidates, 2))
        if len(taken) == 0:
            return int(xy[0, 0]), int(xy[0, 1])
        x0, y0 = xy[:, :1], xy[:, 1:]
        x1, y1 = x0 + side, y0 + side
        overlap = (
            (x0 < taken[None, :, 2] + gap)
            & (taken[None, :, 0] < x1 + gap)
            & (y0 < taken[None, :, 3] + gap)
            & (taken[None, :, 1] < y1 + gap)
        ).any(axis=1)
        ok = np.flatnonzero(~overlap)
        if len(ok):
            return int(xy[ok[0], 0]), int(xy[ok[0], 1])
    return None


def make_scene(
    seed: int,
    index: int,
    *,
    image_size: int = 32,
    n_objects: int | tuple[int, int] = (1, MAX_OBJECTS),
    shapes: Sequence[str] = SHAPES,
    colours: Sequence[str] = COLOUR_NAMES,
    sizes: Sequence[str] = SIZES,
    gap: int = 1,
    background_grey: tuple[float, float] = BACKGROUND_GREY,
) -> Scene:
    """The scene number ``index`` of the world ``seed``.

    ``n_objects`` is a count or an inclusive range; each object draws its shape, colour and size
    uniformly from ``shapes`` / ``colours`` / ``sizes`` and is placed at a random free position at
    least ``gap`` pixels away from every other object. When a large object does not fit any more it
    becomes small; when even that fails the whole layout is redrawn (same generator, so still
    deterministic). ``background_grey`` is the range of the background's grey level (0-255).
    """
    for name, values, valid in (("shape", shapes, SHAPES), ("colour", colours, COLOUR_NAMES), ("size", sizes, SIZES)):
        bad = [v for v in values if v not in valid]
        if bad or not len(values):
            raise ValueError(f"unknown {name}(s) {bad} (valid: {', '.join(valid)})")
    rng = np.random.default_rng((SCENE_SALT, int(seed) & (2**63 - 1), int(index) & (2**63 - 1)))
    if isinstance(n_objects, (tuple, list)):
        count = _uniform_int(rng, int(n_objects[0]), int(n_objects[1]))
    else:
        count = int(n_objects)
    if not 0 <= count <= MAX_OBJECTS:
        raise ValueError(f"n_objects must lie in 0..{MAX_OBJECTS}, got {count}")
    if not 0.0 <= background_grey[0] <= background_grey[1] <= 255.0:
        raise ValueError(f"background_grey must be [lo, hi] with 0 <= lo <= hi <= 255, got {background_grey}")
    background = make_background(rng, background_grey)
    for _attempt in range(100):
        objects: list[SceneObject] = []
        taken = np.zeros((0, 4), dtype=np.int64)
        for _ in range(count):
            shape = shapes[int(rng.integers(len(shapes)))]
            colour = colours[int(rng.integers(len(colours)))]
            size = sizes[int(rng.integers(len(sizes)))]
            pos = None
            for s in ([size, "small"] if size != "small" and "small" in sizes else [size]):
                side = _uniform_int(rng, *size_range(s, image_size))
                pos = free_position(rng, side, image_size, taken, gap=gap)
                if pos is not None:
                    size = s
                    break
            if pos is None:
                break
            box = (pos[0], pos[1], pos[0] + side, pos[1] + side)
            taken = np.concatenate([taken, np.asarray([box], dtype=np.int64)])
            objects.append(make_object(rng, shape, colour, size, box))
        if len(objects) == count:
            return Scene(image_size=image_size, background=background, objects=objects, seed=seed, index=index)
    raise RuntimeError(f"could not place {count} objects on a {image_size}px canvas (seed {seed}, index {index})")
