"""``detect``: object detection on the world's scenes (COCO-detection-like; DETR set prediction).

Every object of a scene is a target: class = its shape (:data:`~.scene.SHAPES`, 6 classes),
attribute = its colour (:data:`~.scene.COLOUR_NAMES`, ``meta["attribute_names"]``). The scenes are
those of the V&L ``coco`` pool (:mod:`.vl.scenes`: 2-6 objects of both sizes), walked by the task's
own stream, so ``image_id`` is the pool scene and the clean split treats a detection image like any
other task's image (as COCO detection and VQA v2 share COCO's images).

Split arrays (the shared detection layout, N = examples, S = ``image_size``, n_i = objects of row i):

- ``image`` uint8 ``[N, 3, S, S]``: the rendered scene;
- ``target_boxes`` :class:`~cotrain.data.ragged.Ragged` float32 ``[n_i, 4]``: normalised
  ``(cx, cy, w, h)`` of each object's box (its pixel edges divided by S);
- ``target_classes`` Ragged int64 ``[n_i]``: the shape index; ``target_attributes`` Ragged int64
  ``[n_i]``: the colour index (objects in the scene's order in all three);
- ``orig_size`` int64 ``[N, 2]``: ``(S, S)`` (the stored image is the original);
- ``image_id`` int64 ``[N]``: the pool scene (:func:`detect_scene` re-creates it).

Determinism: row ``i`` of split ``s`` is the ``i``-th scene of the task's stream for ``s``; nothing
else is drawn.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..ragged import Ragged
from .config import WorldConfig
from .render import render_scene
from .scene import COLOUR_NAMES, SHAPES, Scene

POOL = "coco"
CLASS_NAMES: dict[str, list[str]] = {"detect": list(SHAPES)}
ATTRIBUTE_NAMES: list[str] = list(COLOUR_NAMES)
REQUIRED = ("image", "target_boxes", "target_classes", "target_attributes", "orig_size", "image_id")


def detect_stream(name: str, seed: int, image_size: int):
    """The pool scenes task ``name`` shows, per split (:class:`~.vl.scenes.SceneStream`)."""
    from .vl.scenes import SceneStream  # (the vl package imports this package's build module)

    return SceneStream(name, seed, POOL, image_size)


def detect_scene(seed: int, image_id: int, image_size: int = 32) -> Scene:
    """The scene behind a row's ``image_id`` (built with ``seed`` and ``image_size``)."""
    from .vl.scenes import pool_scene

    return pool_scene(int(seed), int(image_id), int(image_size))


def scene_targets(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes float32 [n, 4] normalised cxcywh, classes int64 [n], attributes int64 [n])``."""
    xyxy = scene.boxes().astype(np.float64) / scene.image_size
    boxes = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                      xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1).astype(np.float32)
    classes = np.asarray([SHAPES.index(o.shape) for o in scene.objects], dtype=np.int64)
    attributes = np.asarray([COLOUR_NAMES.index(o.colour) for o in scene.objects], dtype=np.int64)
    return boxes, classes, attributes


def generate_detect(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict:
    size = cfg.image_size
    ids = detect_stream(name, seed, size).ids(split, n)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    boxes, classes, attributes = [], [], []
    for row, image_id in enumerate(tqdm(ids.tolist(), desc=f"{name}/{split}", disable=not cfg.progress)):
        scene = detect_scene(seed, image_id, size)
        images[row] = render_scene(scene)
        b, c, a = scene_targets(scene)
        boxes.append(b)
        classes.append(c)
        attributes.append(a)
    return {
        "image": images,
        "target_boxes": Ragged.from_rows(boxes, dtype=np.float32, row_shape=(4,)),
        "target_classes": Ragged.from_rows(classes, dtype=np.int64),
        "target_attributes": Ragged.from_rows(attributes, dtype=np.int64),
        "orig_size": np.full((n, 2), size, dtype=np.int64),
        "image_id": ids.astype(np.int64),
    }


def detect_meta() -> dict:
    """The ``TaskData.meta`` keys the detection head reads."""
    return {"head_type": "detect", "attribute_names": list(ATTRIBUTE_NAMES)}


__all__ = ["ATTRIBUTE_NAMES", "CLASS_NAMES", "REQUIRED", "detect_meta", "detect_scene", "detect_stream",
           "generate_detect", "scene_targets"]
