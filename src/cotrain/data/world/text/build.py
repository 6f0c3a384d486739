"""``build_text_world_task``: generate (or load from the cache) a text-only task of the world.

Tasks (:data:`TEXT_TASKS`): ``text-nli`` (:mod:`.nli`), ``text-qnli`` (:mod:`.qnli`), ``text-para``
(:mod:`.para`); each row is two texts about one scene joined by ``[SEP]``.

Split arrays: ``text_raw`` str ``[N]`` (``"a [SEP] b"``: premise and hypothesis, question and
sentence, two descriptions), ``label`` int64 ``[N]`` and ``image_id`` int64 ``[N]``: the pool scene
the texts describe (:mod:`..vl.scenes`), so the clean split treats a described scene like a shown
image. ``meta["extra"][split]["kind"]`` names how each row was made (the task module's ``KINDS``).
Token ids (``text``) are added by :func:`cotrain.data.sources.tokenize_texts` once the vocabulary
exists.

Determinism: row ``i`` of split ``s`` describes the ``i``-th scene of the task's stream for ``s`` and
draws its words from ``example_rng(task_seed(seed, name), SPLIT_OFFSETS[s] + i)``; labels come from
``balanced_labels``. The splits never share a scene. ``vl_scene(seed, image_id, image_size)``
re-creates the scene behind a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ...arrays import TaskData
from .. import build as world_build
from ..common import MAX_SPLIT_SIZE, SPLIT_OFFSETS, balanced_labels, example_rng, split_indices, task_seed
from ..scene import Scene
from ..vl.build import VL_GENERATOR_VERSION
from ..vl.scenes import POOLS, SceneStream, pool_scene
from . import nli, para, qnli

# Bump when generated content changes, so stale caches are not reused.
TEXT_GENERATOR_VERSION = 1
SCENE_SIZE = 48  # the canvas the scenes are laid out on (the V&L tasks' default image size)


# (scene, rng, label, (fewest, most) objects of the task's scenes) -> (text, kind)
RowMaker = Callable[[Scene, np.random.Generator, int, tuple[int, int]], tuple[str, str]]


@dataclass(frozen=True)
class TextTask:
    pool: str  # scene pool (see ..vl.scenes)
    max_objects: int  # scenes with more objects are skipped (shorter premises)
    class_names: tuple[str, ...]
    make_row: RowMaker
    distinct_shapes: bool = False  # only scenes whose objects all differ in shape ("the disc" names one)


def _nli_row(scene: Scene, rng: np.random.Generator, label: int, counts: tuple[int, int]) -> tuple[str, str]:
    text, kind, _ = nli.nli_example(scene, rng, label, counts)
    return text, kind


TEXT_TASKS: dict[str, TextTask] = {
    # two-object scenes: with three a small model learnt nothing from the premise in 800 steps
    "text-nli": TextTask("coco", 2, tuple(nli.NLI_CLASSES), _nli_row),
    "text-qnli": TextTask("coco", 2, tuple(qnli.QNLI_CLASSES), qnli.qnli_example, distinct_shapes=True),
    "text-para": TextTask("coco", 2, tuple(para.PARA_CLASSES), para.para_example, distinct_shapes=True),
}
REQUIRED = ("text_raw", "label", "image_id")


def text_class_names(name: str) -> list[str]:
    return list(TEXT_TASKS[name].class_names)


def text_stream(name: str, seed: int, image_size: int = SCENE_SIZE) -> SceneStream:
    """The scenes task ``name`` describes, per split (pool scenes with at most ``max_objects``, all of
    different shapes when the task asks for ``distinct_shapes``)."""
    task = TEXT_TASKS[name]

    def eligible(scene: Scene) -> bool:
        shapes = [o.shape for o in scene.objects]
        return len(shapes) <= task.max_objects and (not task.distinct_shapes or len(set(shapes)) == len(shapes))

    return SceneStream(name, seed, task.pool, image_size, eligible)


def text_scene(seed: int, image_id: int, image_size: int = SCENE_SIZE) -> Scene:
    """The scene behind a row's ``image_id``."""
    return pool_scene(int(seed), int(image_id), int(image_size))


def _texts(values: list[str]) -> np.ndarray:
    return np.asarray(values, dtype=np.str_).reshape(len(values))


def object_counts(name: str) -> tuple[int, int]:
    """The fewest and most objects a scene of task ``name`` has."""
    task = TEXT_TASKS[name]
    return POOLS[task.pool].n_objects[0], min(task.max_objects, POOLS[task.pool].n_objects[1])


def _gen_rows(name: str, seed: int, stream: SceneStream, split: str, n: int, progress: bool) -> dict[str, np.ndarray]:
    task, ts = TEXT_TASKS[name], task_seed(seed, name)
    counts = object_counts(name)
    ids = stream.ids(split, n)
    index = split_indices(split, n)
    labels = balanced_labels(ts, index, len(task.class_names))
    texts, kinds = [], []
    for row in tqdm(range(n), desc=f"{name}/{split}", disable=not progress):
        rng = example_rng(ts, int(index[row]))
        text, kind = task.make_row(stream.scene(ids[row]), rng, int(labels[row]), counts)
        texts.append(text)
        kinds.append(kind)
    return {"text_raw": _texts(texts), "label": labels, "image_id": ids, "_kind": _texts(kinds)}


def text_cache_key(name: str, params: dict) -> str:
    blob = json.dumps({"name": name, "world_version": world_build.GENERATOR_VERSION, "vl_version": VL_GENERATOR_VERSION,
                       "text_version": TEXT_GENERATOR_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_text_world_task(
    name: str,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    cache_dir: str | Path | None,
    image_size: int = SCENE_SIZE,
    progress: bool = False,
) -> TaskData:
    """Generate text task ``name`` (see :data:`TEXT_TASKS`) of the procedural world (input: text).

    Deterministic in its arguments; with ``cache_dir`` the arrays are saved once (atomically) to
    ``cache_dir/<name>-<hash of the arguments and generator versions>.npz`` and loaded afterwards.
    ``image_size`` is the canvas the scenes are laid out on (it decides the relations).
    """
    if name not in TEXT_TASKS:
        raise ValueError(f"unknown text world task {name!r}; valid names: {', '.join(TEXT_TASKS)}")
    check = world_build._check_int
    sizes = {s: check(f"n_{s}", v, 0, MAX_SPLIT_SIZE)
             for s, v in (("train", n_train), ("val", n_val), ("test", n_test))}
    seed = check("seed", seed, -(2**62), 2**62)
    image_size = check("image_size", image_size, 32, 512)
    params = {**{f"n_{k}": v for k, v in sizes.items()}, "seed": seed, "image_size": image_size}
    path = Path(cache_dir) / f"{name}-{text_cache_key(name, params)}.npz" if cache_dir is not None else None
    stream: list[SceneStream] = []  # made on the first split generated (not at all on a cache hit)

    def generate(split: str) -> dict[str, np.ndarray]:
        if not stream:
            stream.append(text_stream(name, seed, image_size))
        return _gen_rows(name, seed, stream[0], split, sizes[split], progress)

    splits, extra, cached = world_build.cached_splits(path, REQUIRED, generate)
    meta = world_build.world_meta(name, seed, params, path, cached, extra, pool=TEXT_TASKS[name].pool,
                                  image_size=image_size, generator_version=TEXT_GENERATOR_VERSION)
    return TaskData(
        name=name,
        class_names=text_class_names(name),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        meta=meta,
    )
