"""``build_vl_world_task``: generate (or load from the cache) one of the V&L tasks of the world (the
twelve of 12-in-1 and the two caption pretraining tasks).

Arrays follow ``docs/vl-contract.md``. Every split has ``text_raw`` (str ``[N]``), ``image_id``
(int64, the pool scene), ``label`` (not ``pretrain``) and ``visual_index`` (int64) into the split's store ``visual``,
which holds each scene once: ``image`` (uint8 pixels), ``regions`` (float16) / ``boxes`` /
``region_mask`` (the proposals, see :mod:`.regions`); pointing / guesswhat rows, whose proposals
are their own candidates, each have their own store row. ``nlvr`` (K = 2) carries a view axis after
N. Per head type:

- ``vqa`` (``vqa``, ``vgqa``, ``gqa``): ``answers`` int64 ``[N, 10]``, ``label`` float32 ``[N, A]`` soft
  scores, ``about_object`` int64 ``[N]`` (the object the question is about, -1 if none),
  ``answer_type`` str ``[N]`` ("yes/no", "number" or "other", of the canonical answer);
- ``retrieval``: ``label`` int64 ``[N]`` zeros (view 0 of a training batch is the caption's image);
  the train split adds ``candidate_index`` int64 ``[N, C]`` (store rows of the caption's C hard
  candidate images, best first; the store holds them too) and ``candidate_id`` int64 ``[N, C]``
  (their scenes), from which :mod:`cotrain.data.negatives` draws each batch's negatives;
- ``refexp``: ``label`` float32 ``[N, R]`` (IoU >= 0.5 with the target, else 0), ``target_box`` float32
  ``[N, 4]`` (normalised), ``target_object`` int64 ``[N]`` (index in the scene's objects);
- ``nlvr``: ``label`` int64 ``[N]`` (0 false, 1 true); ``snli-ve``: ``label`` int64 ``[N]``;
- ``pretrain`` (``captions``, ``captions-shift``): no ``label``; the store also holds
  ``region_classes`` float32 ``[M, R, C]`` (see :mod:`.captions`).

``meta["extra"][split]`` holds what is not an input: ``kind`` (question kind / template form of each
row) and, for the QA tasks, ``answers_raw`` (the annotators' answers as typed).

Determinism: row ``i`` of split ``s`` uses the scene(s) of the task's stream (:mod:`.scenes`) and
draws everything else from ``example_rng(task_seed(seed, name), SPLIT_OFFSETS[s] + i)``; classes are
balanced by ``balanced_labels``. :func:`scene_for_vl_example` re-creates the scene behind a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...arrays import TaskData
from .. import build as world_build
from ..common import MAX_SPLIT_SIZE, SPLIT_OFFSETS, SPLITS, balanced_labels, example_rng, split_indices, task_seed
from ..scene import Scene
from . import answers, captions, qa, refexp, retrieval, verify
from .facts import has_unique_object
from .language import sentence
from .regions import MIN_REGIONS, REGION_DIM, iou
from .scenes import SceneStream, pool_scene
from .visuals import Visuals

# Bump when generated content changes, so stale caches are not reused.
VL_GENERATOR_VERSION = 3  # 2: visual arrays stored once per scene (a store + visual_index); 3: retrieval
# train rows keep C hard candidates (candidate_index / candidate_id) instead of 3 fixed negative views


@dataclass(frozen=True)
class VLTask:
    group: str  # 12-in-1's task group (G1-G4), or "pretrain"
    head_type: str  # vqa | retrieval | refexp | nlvr | snli-ve | pretrain
    pool: str  # scene pool (see .scenes)


VL_TASKS: dict[str, VLTask] = {
    "vqa": VLTask("G1", "vqa", "coco"),
    "vgqa": VLTask("G1", "vqa", "coco"),
    "gqa": VLTask("G1", "vqa", "coco"),
    "coco-ir": VLTask("G2", "retrieval", "coco"),
    "flickr-ir": VLTask("G2", "retrieval", "flickr"),
    "refcoco": VLTask("G3", "refexp", "coco"),
    "refcoco+": VLTask("G3", "refexp", "coco"),
    "refcocog": VLTask("G3", "refexp", "coco"),
    "pointing": VLTask("G3", "refexp", "coco"),
    "guesswhat": VLTask("G3", "refexp", "coco"),
    "nlvr": VLTask("G4", "nlvr", "coco"),
    "snli-ve": VLTask("G4", "snli-ve", "flickr"),
    "captions": VLTask("pretrain", "pretrain", "cc"),
    "captions-shift": VLTask("pretrain", "pretrain", "cc-shift"),
}
# tasks that must name an object skip scenes in which every object has a twin
ELIGIBLE = {name: has_unique_object for name in ("vgqa", "gqa", *refexp.GENERATORS)}


def vl_class_names(name: str) -> list[str]:
    """The task's class names: the answer vocabulary (vqa), ``match`` (retrieval), ``region``
    (refexp), the verdicts (nlvr, snli-ve) or the region classes (pretrain: background, the shapes)."""
    head = VL_TASKS[name].head_type
    if head == "vqa":
        return list(qa.VOCAB[name])
    return {"retrieval": ["match"], "refexp": ["region"], "nlvr": list(verify.NLVR_CLASSES),
            "snli-ve": list(verify.SNLI_VE_CLASSES), "pretrain": list(captions.CLASS_NAMES)}[head]


def task_stream(name: str, seed: int, image_size: int) -> SceneStream:
    return SceneStream(name, seed, VL_TASKS[name].pool, image_size, ELIGIBLE.get(name))


def vl_scene(seed: int, image_id: int, image_size: int = 48) -> Scene:
    """The pool scene ``image_id`` of the world ``seed`` (any task's ``image_id`` value)."""
    return pool_scene(int(seed), int(image_id), int(image_size))


@dataclass
class _Ctx:
    name: str
    seed: int
    ts: int
    stream: SceneStream
    vis: Visuals
    progress: bool
    candidates: int = retrieval.N_CANDIDATES  # retrieval: hard candidates kept per train caption

    def rows(self, split: str, n: int):
        idx = split_indices(split, n)
        return tqdm(list(enumerate(idx.tolist())), desc=f"{self.name}/{split}", disable=not self.progress)


def _texts(values: list[str]) -> np.ndarray:
    return np.asarray(values, dtype=np.str_).reshape(len(values))


def _gen_qa(ctx: _Ctx, split: str, n: int) -> dict[str, np.ndarray]:
    ids = ctx.stream.ids(split, n)
    kinds = balanced_labels(ctx.ts, split_indices(split, n), len(qa.KINDS[ctx.name]))
    out = []
    for row, index in ctx.rows(split, n):
        out.append(qa.make_question(ctx.name, ctx.vis.scene(ids[row]), example_rng(ctx.ts, index), int(kinds[row])))
    answer_ids, label = answers.answer_arrays([q.raw for q in out], qa.VOCAB[ctx.name])
    return {
        **ctx.vis.arrays(ids),
        "text_raw": _texts([q.question for q in out]),
        "answers": answer_ids,
        "label": label,
        "about_object": np.asarray([q.about for q in out], dtype=np.int64),
        "answer_type": _texts([q.answer_type for q in out]),
        "_answers_raw": np.asarray([q.raw for q in out], dtype=np.str_).reshape(n, answers.N_ANNOTATORS),
        "_kind": _texts([q.kind for q in out]),
    }


def _candidates(ctx: _Ctx, row: int, scene: Scene, facts: list[tuple], k: int) -> list[int]:
    """The ``k`` hard candidates of train row ``row`` (scene ids, best first): its block's, then the
    next blocks' while fewer were found (:func:`retrieval.hard_negatives`)."""
    block = row // retrieval.BLOCK
    found: list[int] = []
    while len(found) < k:
        lo, hi = block * retrieval.BLOCK, (block + 1) * retrieval.BLOCK
        cand = [(int(i), ctx.vis.scene(i)) for i in ctx.stream.ids("train", hi)[lo:hi]]
        found += [i for i in retrieval.hard_negatives(scene, facts, cand, k) if i not in found]
        block += 1
    return found[:k]


def _gen_retrieval(ctx: _Ctx, split: str, n: int) -> dict[str, np.ndarray]:
    ids = ctx.stream.ids(split, n)
    texts, views = [], []
    for row, index in ctx.rows(split, n):
        scene = ctx.vis.scene(ids[row])
        text, facts = retrieval.CAPTIONS[ctx.name](scene, example_rng(ctx.ts, index))
        texts.append(text)
        if split == "train":
            views.append([int(ids[row])] + _candidates(ctx, row, scene, facts, ctx.candidates))
    label = np.zeros(n, dtype=np.int64)
    if split != "train":
        return {**ctx.vis.arrays(ids), "text_raw": _texts(texts), "label": label}
    arrays = ctx.vis.arrays(np.asarray(views, dtype=np.int64).reshape(n, 1 + ctx.candidates))  # one store
    index, view_ids = arrays.pop("visual_index"), arrays.pop("image_id")
    return {**arrays, "visual_index": index[:, 0], "image_id": view_ids[:, 0], "candidate_index": index[:, 1:],
            "candidate_id": view_ids[:, 1:], "text_raw": _texts(texts), "label": label}


def _gen_refexp(ctx: _Ctx, split: str, n: int) -> dict[str, np.ndarray]:
    ids = ctx.stream.ids(split, n)
    refs, box_lists, targets = [], [], np.zeros((n, 4))
    for row, index in ctx.rows(split, n):
        scene = ctx.vis.scene(ids[row])
        rng = example_rng(ctx.ts, index)
        ref = refexp.GENERATORS[ctx.name](scene, rng)
        refs.append(ref)
        targets[row] = scene.objects[ref.target].box
        if ref.candidates is not None:
            obj = scene.boxes().astype(np.float64)
            boxes = obj[ref.candidates]
            if ctx.name == "pointing":  # 4 candidates (distractor boxes when objects run out), shuffled
                props, source = ctx.vis.proposals(ids[row])
                boxes = np.concatenate([boxes, props[source == -1][: refexp.N_CANDIDATES - len(boxes)]])
                boxes = boxes[rng.permutation(len(boxes))]
            box_lists.append(boxes)
    arrays = ctx.vis.arrays(ids, box_lists if box_lists else None)
    size = ctx.vis.size
    target_box = (targets / size).astype(np.float32)
    props = arrays["visual"].take(arrays["visual_index"], keys=("boxes", "region_mask"))
    overlap = iou(props["boxes"].astype(np.float64), target_box[:, None, :].astype(np.float64))
    label = np.where(props["region_mask"] & (overlap >= 0.5), overlap, 0.0).astype(np.float32)
    return {
        **arrays,
        "text_raw": _texts([r.text for r in refs]),
        "label": label,
        "target_box": target_box,
        "target_object": np.asarray([r.target for r in refs], dtype=np.int64),
        "_kind": _texts([r.kind for r in refs]),
    }


def _gen_nlvr(ctx: _Ctx, split: str, n: int) -> dict[str, np.ndarray]:
    ids = ctx.stream.ids(split, 2 * n).reshape(n, 2)
    labels = balanced_labels(ctx.ts, split_indices(split, n), 2)
    texts, kinds = [], []
    for row, index in ctx.rows(split, n):
        left, right = ctx.vis.scene(ids[row, 0]), ctx.vis.scene(ids[row, 1])
        text, kind = verify.nlvr_statement(left, right, example_rng(ctx.ts, index), bool(labels[row]))
        texts.append(sentence(text))
        kinds.append(kind)
    return {**ctx.vis.arrays(ids), "text_raw": _texts(texts), "label": labels, "_kind": _texts(kinds)}


def _gen_snli(ctx: _Ctx, split: str, n: int) -> dict[str, np.ndarray]:
    ids = ctx.stream.ids(split, n)
    labels = balanced_labels(ctx.ts, split_indices(split, n), 3)
    texts, kinds = [], []
    for row, index in ctx.rows(split, n):
        text, kind = verify.snli_hypothesis(ctx.vis.scene(ids[row]), example_rng(ctx.ts, index), int(labels[row]))
        texts.append(text)
        kinds.append(kind)
    return {**ctx.vis.arrays(ids), "text_raw": _texts(texts), "label": labels, "_kind": _texts(kinds)}


_GENERATORS = {"vqa": _gen_qa, "retrieval": _gen_retrieval, "refexp": _gen_refexp, "nlvr": _gen_nlvr,
               "snli-ve": _gen_snli, "pretrain": captions.generate_captions}
REQUIRED = {  # the row arrays a cached split must hold beyond COMMON_KEYS
    "vqa": ("label", "answers", "about_object", "answer_type"),
    "retrieval": ("label",),
    "refexp": ("label", "target_box", "target_object"),
    "nlvr": ("label",),
    "snli-ve": ("label",),
    "pretrain": captions.REQUIRED,
}
COMMON_KEYS = ("text_raw", "image_id", "visual_index")


def vl_cache_key(name: str, params: dict) -> str:
    blob = json.dumps(
        {"name": name, "world_version": world_build.GENERATOR_VERSION, "vl_version": VL_GENERATOR_VERSION, **params},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_vl_world_task(
    name: str,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    cache_dir: str | Path | None,
    image_size: int = 48,
    max_regions: int = 12,
    candidates: int = retrieval.N_CANDIDATES,
    progress: bool = False,
) -> TaskData:
    """Generate V&L task ``name`` (see :data:`VL_TASKS`) of the procedural world (inputs: regions, image and text).
    ``candidates``: hard candidates kept per retrieval train caption (other tasks ignore it).

    Deterministic in its arguments; with ``cache_dir`` the row arrays are saved once (atomically) to
    ``cache_dir/vl-<name>-<hash of the arguments and generator versions>.npz`` and the stores next to
    it (``.stores/<split>-visual/``), and loaded afterwards (the stores memory-mapped).
    """
    if name not in VL_TASKS:
        raise ValueError(f"unknown V&L world task {name!r}; valid names: {', '.join(VL_TASKS)}")
    check = world_build._check_int
    sizes = {s: check(f"n_{s}", v, 0, MAX_SPLIT_SIZE) for s, v in
             (("train", n_train), ("val", n_val), ("test", n_test))}
    seed = check("seed", seed, -(2**62), 2**62)
    image_size = check("image_size", image_size, 32, 512)
    max_regions = check("max_regions", max_regions, MIN_REGIONS, 256)
    spec = VL_TASKS[name]
    params = {**{f"n_{k}": v for k, v in sizes.items()}, "seed": seed, "image_size": image_size,
              "max_regions": max_regions}
    if spec.head_type == "retrieval":
        params["candidates"] = check("candidates", candidates, 1, 256)
    path = Path(cache_dir) / f"vl-{name}-{vl_cache_key(name, params)}.npz" if cache_dir is not None else None
    ctx: list[_Ctx] = []  # built on the first split generated (not at all on a cache hit)

    def generate(split: str) -> dict[str, np.ndarray]:
        if not ctx:
            ctx.append(_Ctx(name, seed, task_seed(seed, name), task_stream(name, seed, image_size),
                            Visuals(seed, image_size, max_regions), progress, params.get("candidates", 0)))
        return _GENERATORS[spec.head_type](ctx[0], split, sizes[split])

    splits, extra, cached = world_build.cached_splits(path, COMMON_KEYS + REQUIRED[spec.head_type], generate)
    meta = world_build.world_meta(name, seed, params, path, cached, extra, head_type=spec.head_type, group=spec.group,
                                  region_dim=REGION_DIM, image_size=image_size, generator_version=VL_GENERATOR_VERSION,
                                  pool=spec.pool)
    return TaskData(
        name=name,
        class_names=vl_class_names(name),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        multilabel=spec.head_type == "vqa",
        meta=meta,
    )


def scene_for_vl_example(name: str, seed: int, split: str, row: int, *, image_size: int = 48, view: int = 0) -> Scene:
    """Re-create the scene behind row ``row`` of ``split`` of task ``name`` (view ``view`` for the
    K-view rows: nlvr's right image is view 1; for a retrieval train row view ``v`` >= 1 is its
    ``v``-th hard candidate, ``candidate_id[row, v - 1]``)."""
    spec = VL_TASKS[name]
    stream = task_stream(name, seed, image_size)
    row = int(row)
    if spec.head_type == "nlvr":
        return vl_scene(seed, stream.ids(split, 2 * row + 2)[2 * row + view], image_size)
    image_id = int(stream.ids(split, row + 1)[row])
    scene = vl_scene(seed, image_id, image_size)
    if view == 0:
        return scene
    if spec.head_type != "retrieval" or split != "train":
        raise ValueError(f"row {row} of {name}/{split} has a single view")
    ts = task_seed(seed, name)
    _, facts = retrieval.CAPTIONS[name](scene, example_rng(ts, SPLIT_OFFSETS[split] + row))
    ctx = _Ctx(name, seed, ts, stream, Visuals(seed, image_size, MIN_REGIONS), False)
    return vl_scene(seed, _candidates(ctx, row, scene, facts, view)[view - 1], image_size)
