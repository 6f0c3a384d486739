"""Caption pretraining data of the V&L world: ``captions`` and ``captions-shift`` (Conceptual Captions' role).

One row per scene of the task's own pool (``captions``: ``cc``, the ``coco`` distribution at other
image ids; ``captions-shift``: ``cc-shift``, small objects on light backgrounds; see :mod:`.scenes`),
so pretraining never sees an image of a downstream task. Each row's caption describes its scene in
the COCO or the Flickr style of :mod:`.retrieval` (one or the other with probability 1/2, drawn from
the row's generator; a one-object scene always gets the Flickr style, which can describe it), so
captions vary in form as web captions do; every fact a caption asserts holds on its scene.

Arrays (N rows): ``text_raw`` str ``[N]``, ``image_id`` int64 ``[N]``, ``visual_index`` int64 ``[N]``
into the store ``visual``, which holds each scene once with ``image``, ``regions``, ``boxes``,
``region_mask`` (as every V&L world task, :mod:`.visuals`) and ``region_classes`` float32
``[M, R, C]``: each proposal's class distribution over ``C`` = :data:`CLASS_NAMES` (background and
the six shapes; ViLBERT's masked-region target): the shape of the object the proposal overlaps most
gets the IoU with that object's box, background the rest (``1 - IoU``), so an exact object box is
one-hot on its shape and a distractor box is (nearly) all background; padded slots are all zero.
No ``label``: the pretraining objectives make their own targets. ``meta["extra"][split]["style"]``
says which caption style each row has.
"""

from __future__ import annotations

import numpy as np

from ...stores import stack_store
from ..common import example_rng
from ..scene import SHAPES, Scene
from .regions import iou
from .retrieval import coco_caption, flickr_caption

CLASS_NAMES: tuple[str, ...] = ("background", *SHAPES)
STYLES = {"coco": coco_caption, "flickr": flickr_caption}
REQUIRED: tuple[str, ...] = ()  # row arrays beyond text_raw / image_id / visual_index


def scene_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, str, list[tuple]]:
    """``(caption, style, facts)`` of ``scene``: the COCO or the Flickr style with probability 1/2
    (Flickr for a one-object scene), the caption drawn from ``rng`` by :mod:`.retrieval`."""
    coco = rng.random() < 0.5 and len(scene) >= 2  # always one draw, so the rest does not depend on k
    style = "coco" if coco else "flickr"
    text, facts = STYLES[style](scene, rng)
    return text, style, facts


def region_classes(scene: Scene, boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 ``[R, C]`` class distributions of the proposals ``boxes`` float ``[R, 4]`` (normalised
    ``x0, y0, x1, y1``; ``mask`` bool ``[R]``, True = real) of ``scene`` (see the module docstring):
    rows of real slots sum to 1, padded rows are zero."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    out = np.zeros((len(boxes), len(CLASS_NAMES)), dtype=np.float64)
    objects = scene.boxes().astype(np.float64) / scene.image_size  # [K, 4]
    real = np.flatnonzero(mask)
    if len(objects) == 0:
        out[real, 0] = 1.0
        return out.astype(np.float32)
    overlap = iou(boxes[real, None, :], objects[None, :, :])  # [n, K]
    best = overlap.argmax(axis=1)
    value = np.clip(overlap[np.arange(len(real)), best], 0.0, 1.0)
    shape = np.asarray([1 + SHAPES.index(o.shape) for o in scene.objects])[best]
    out[real, 0] = 1.0 - value
    out[real, shape] += value
    return out.astype(np.float32)


def generate_captions(ctx, split: str, n: int) -> dict[str, np.ndarray]:
    """The arrays of ``n`` rows of ``split`` (``ctx``: the builder's context, see :mod:`.build`)."""
    ids = ctx.stream.ids(split, n)
    texts, styles = [], []
    for row, index in ctx.rows(split, n):
        text, style, _ = scene_caption(ctx.vis.scene(ids[row]), example_rng(ctx.ts, index))
        texts.append(text)
        styles.append(style)
    arrays = ctx.vis.arrays(ids)
    store = arrays["visual"]
    scene_of = np.zeros(len(store), dtype=np.int64)  # the image id of each store row
    scene_of[arrays["visual_index"]] = ids
    got = store.take(np.arange(len(store)), keys=("boxes", "region_mask"))
    classes = np.zeros((len(store), got["boxes"].shape[1], len(CLASS_NAMES)), dtype=np.float32)
    for m, image_id in enumerate(scene_of.tolist()):
        classes[m] = region_classes(ctx.vis.scene(image_id), got["boxes"][m], got["region_mask"][m])
    arrays["visual"] = stack_store({**store.arrays, "region_classes": classes})
    return {
        **arrays,
        "text_raw": np.asarray(texts, dtype=np.str_).reshape(n),
        "_style": np.asarray(styles, dtype=np.str_).reshape(n),
    }
