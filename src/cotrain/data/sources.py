"""From a task's ``source`` config to its :class:`TaskData`.

``build_all_task_data(cfg)`` loads every task of an experiment (and, when any task reads text,
builds or loads the WordPiece tokenizer first, from all text tasks' training sentences).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..config import VL_FORMAT_KINDS, ExperimentConfig, TaskConfig
from .arrays import TaskData
from .errors import DataError

def data_root(cfg: ExperimentConfig) -> Path:
    """Where generated world data is cached: ``data.root``, else ``$COTRAIN_DATA``, else ``~/.cache/cotrain``."""
    root = cfg.data.root or os.environ.get("COTRAIN_DATA") or Path.home() / ".cache" / "cotrain"
    return Path(root).expanduser()


def _world(task: TaskConfig, cfg: ExperimentConfig, progress: bool, tokenizer) -> TaskData:
    from .world import build_world_task, world_task_inputs
    from .world.text import TEXT_TASKS, build_text_world_task
    from .world.vl.build import VL_TASKS, build_vl_world_task

    enc, src = cfg.model.encoders, task.source
    common = dict(
        n_train=src.n_train, n_val=src.n_val, n_test=src.n_test, seed=cfg.data.seed if src.seed is None else src.seed,
        cache_dir=data_root(cfg) / "world", progress=progress,
    )
    if src.name in VL_TASKS:
        return build_vl_world_task(src.name, image_size=enc.image.image_size, max_regions=enc.regions.max_regions,
                                   candidates=task.retrieval.data_candidates, **common)
    if src.name in TEXT_TASKS:
        return build_text_world_task(src.name, **common)
    size = enc.video.image_size if world_task_inputs(src.name) == ("video",) else enc.image.image_size
    return build_world_task(
        src.name, image_size=size, frames=enc.video.frames, sample_rate=enc.audio.sample_rate,
        seconds=enc.audio.seconds, **common,
    )


def _folder_kwargs(task: TaskConfig, cfg: ExperimentConfig) -> dict:
    src = task.source
    seed = cfg.data.seed if src.seed is None else src.seed
    return dict(val_fraction=src.val_fraction, test_fraction=src.test_fraction, seed=seed, name=task.name)


def _image_folder(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.folders import read_image_folder

    return read_image_folder(
        task.source.path, image_size=cfg.model.encoders.image.image_size, progress=progress, **_folder_kwargs(task, cfg)
    )


def _audio_folder(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.folders import read_audio_folder

    a = cfg.model.encoders.audio
    return read_audio_folder(
        task.source.path, sample_rate=a.sample_rate, seconds=a.seconds, progress=progress, **_folder_kwargs(task, cfg)
    )


def _video_folder(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.folders import read_video_folder

    v = cfg.model.encoders.video
    return read_video_folder(
        task.source.path, frames=v.frames, image_size=v.image_size, progress=progress, **_folder_kwargs(task, cfg)
    )


def _text_tsv(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.text_tsv import read_text_tsv

    if tokenizer is None:
        raise DataError(f"task {task.name!r} reads text but no tokenizer was built")
    return read_text_tsv(
        task.source.path, tokenizer=tokenizer, max_len=cfg.model.encoders.text.max_len, **_folder_kwargs(task, cfg)
    )


def _vl_format(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.vl.source import read_vl_source

    return read_vl_source(task, cfg, progress=progress)


def _coco_detection(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.coco_detection import read_coco_detection
    from .formats.vl.source import store_cache

    src = task.source
    return read_coco_detection(
        src.files, src.images, image_size=cfg.model.encoders.image.image_size, bad_boxes=src.bad_boxes,
        missing=src.missing, cache=store_cache(cfg), **_folder_kwargs(task, cfg),
    )


def _glue(task, cfg, progress, tokenizer) -> TaskData:
    from .formats.glue import read_glue

    kw = _folder_kwargs(task, cfg)
    kw.pop("val_fraction")  # val is GLUE's dev file
    return read_glue(task.source.path, task.source.glue_task, mnli_dev=task.source.mnli_dev, **kw)


BUILDERS: dict[str, Callable[..., TaskData]] = {
    "world": _world,
    "image_folder": _image_folder,
    "audio_folder": _audio_folder,
    "video_folder": _video_folder,
    "text_tsv": _text_tsv,
    **{kind: _vl_format for kind in VL_FORMAT_KINDS},
    "coco_detection": _coco_detection,
    "glue": _glue,
}


def build_tokenizer_for(
    cfg: ExperimentConfig, vocab_file: str | Path | None = None, extra_texts: list[str] | None = None
):
    """The tokenizer for an experiment's text, or None when no task reads text.

    ``vocab_file`` (a checkpoint's vocab.txt) wins over the config, so a loaded model keeps its ids.
    A vocabulary built from data learns from the text TSVs' training sentences plus ``extra_texts``
    (the other tasks' training ``text_raw``: questions, captions, premises).
    """
    text_tasks = [t for t in cfg.tasks if t.source.kind == "text_tsv"]
    if not text_tasks and not extra_texts and vocab_file is None:
        return None
    from .tokenizer import build_tokenizer

    tcfg = cfg.model.encoders.text
    if vocab_file is not None:
        return build_tokenizer(tcfg.model_copy(update={"vocab": str(vocab_file)}))
    if tcfg.vocab is not None or tcfg.pretrained is not None:
        return build_tokenizer(tcfg)
    from .formats.text_tsv import read_tsv_texts

    texts = []
    for t in text_tasks:  # training sentences only, split exactly as the reader will split them
        kw = _folder_kwargs(t, cfg)
        kw.pop("name")
        texts += read_tsv_texts(t.source.path, split="train", **kw)
    return build_tokenizer(tcfg, texts + list(extra_texts or []))


def tokenize_texts(data: TaskData, tokenizer, max_len: int) -> TaskData:
    """Add ``text`` int64 ``[N, max_len]`` to every split of a task from its ``text_raw``."""
    for split in (data.train, data.val, data.test):
        raw = split.arrays.get("text_raw")
        if raw is None:
            raise DataError(f"task {data.name!r}: a split has no text_raw array to tokenise")
        split.arrays["text"] = tokenizer.encode([str(x) for x in raw], max_len)
    return data


def build_task_data(task: TaskConfig, cfg: ExperimentConfig, *, tokenizer=None, progress: bool = False) -> TaskData:
    data = BUILDERS[task.source.kind](task, cfg, progress, tokenizer)
    data.name = task.name
    rate = cfg.model.encoders.audio.sample_rate
    if "audio" in data.inputs and data.sample_rate != rate:
        raise DataError(f"task {task.name!r} gives audio at {data.sample_rate} Hz but the audio encoder expects {rate} Hz")
    return data


def build_all_task_data(
    cfg: ExperimentConfig, *, progress: bool = False, vocab_file: str | Path | None = None
) -> tuple[dict[str, TaskData], object | None]:
    """Load every task of ``cfg``; returns ``({task: TaskData}, tokenizer or None)``.

    Order: every source that needs no tokenizer; the clean split (``data.clean``) over the tasks with
    image ids; the tokenizer (from the text TSVs and every task's training ``text_raw``); each task's
    ``text_raw`` tokenised; the text TSVs, read with the tokenizer; a retrieval task's mined hard
    candidates (``tasks[].retrieval.mined``, :func:`cotrain.data.mined.apply_mined`)."""
    from ..tasks import task_inputs

    for t in cfg.tasks:  # unknown world names or input kinds fail before any work
        task_inputs(t)
    first = {t.name: build_task_data(t, cfg, progress=progress) for t in cfg.tasks if t.source.kind != "text_tsv"}
    with_ids = {n: d for n, d in first.items() if "image_id" in d.train}
    if cfg.data.clean and with_ids:
        from .clean_split import clean_task_data

        clean_task_data(with_ids)
    extra = [str(x) for d in first.values() if "text_raw" in d.train.arrays for x in d.train.arrays["text_raw"]]
    tokenizer = build_tokenizer_for(cfg, vocab_file, extra)
    out = {}
    for t in cfg.tasks:
        d = first.get(t.name) or build_task_data(t, cfg, tokenizer=tokenizer, progress=progress)
        if "text_raw" in d.train.arrays and tokenizer is not None:
            tokenize_texts(d, tokenizer, cfg.model.encoders.text.max_len)
        if t.retrieval.mined:
            from .mined import apply_mined

            d.train = apply_mined(d.train, t.retrieval.mined, task=t.name, keep=t.retrieval.candidates)
        out[t.name] = d
    return out, tokenizer
