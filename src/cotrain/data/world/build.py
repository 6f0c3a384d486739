"""``build_world_task``: generate (or load from the cache) one task of the procedural world."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..arrays import Split, TaskData
from ..errors import DataError
from ..ragged import Ragged
from ..stores import VisualStore
from . import audio, detect, images, speech, video
from .common import MAX_SPLIT_SIZE, SPLIT_OFFSETS, SPLITS, task_seed
from .config import WorldConfig

# Bump when generated content changes, so stale caches are not reused.
GENERATOR_VERSION = 1

WORLD_TASKS: dict[str, str] = {
    "shapes": "image",
    "count": "image",
    "digits": "image",
    "motion": "video",
    "moving-digits": "video",
    "sounds": "audio",
    "spoken-digits": "audio",
    "detect": "image",
}

Generator = Callable[[str, int, str, int, WorldConfig], dict]
_GENERATORS: dict[str, Generator] = {
    "shapes": images.generate_scene_task,
    "count": images.generate_scene_task,
    "digits": images.generate_digits,
    "motion": video.generate_motion,
    "moving-digits": video.generate_moving_digits,
    "sounds": audio.generate_sounds,
    "spoken-digits": speech.generate_spoken_digits,
    "detect": detect.generate_detect,
}
CLASS_NAMES: dict[str, list[str]] = {
    **images.CLASS_NAMES,
    **video.CLASS_NAMES,
    **audio.CLASS_NAMES,
    **speech.CLASS_NAMES,
    **detect.CLASS_NAMES,
}
# the arrays a task's cache must hold (default: its input and "label") and its own TaskData.meta keys
REQUIRED: dict[str, tuple[str, ...]] = {"detect": detect.REQUIRED}
TASK_META: dict[str, Callable[[], dict]] = {"detect": detect.detect_meta}


def espeak_available() -> bool:
    """Whether the ``spoken-digits`` task can be generated (``espeak-ng`` is installed)."""
    return speech.espeak_available()


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi if hi is not None else 'inf'}], got {value}")
    return int(value)


def cache_key(name: str, params: dict) -> str:
    blob = json.dumps({"name": name, "version": GENERATOR_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


RAGGED_PARTS = ("@values", "@offsets")  # a Ragged array ``k`` is cached as ``k@values`` and ``k@offsets``


def split_ragged(flat: dict) -> dict[str, np.ndarray]:
    """``flat`` with every :class:`~cotrain.data.ragged.Ragged` value stored as its two arrays."""
    out: dict[str, np.ndarray] = {}
    for k, v in flat.items():
        if isinstance(v, Ragged):
            out[k + RAGGED_PARTS[0]], out[k + RAGGED_PARTS[1]] = v.values, v.offsets
        else:
            out[k] = v
    return out


def join_ragged(flat: dict[str, np.ndarray]) -> dict | None:
    """The inverse of :func:`split_ragged` (keeping the order of the keys); None when a Ragged
    array's parts are missing or do not fit together."""
    values, offsets = RAGGED_PARTS
    out: dict = {}
    for k, v in flat.items():
        if k.endswith(offsets):
            if k[: -len(offsets)] + values not in flat:
                return None
        elif k.endswith(values):
            base = k[: -len(values)]
            if base + offsets not in flat:
                return None
            try:
                out[base] = Ragged(v, flat[base + offsets])
            except ValueError:
                return None
        else:
            out[k] = v
    return out


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or unreadable (then it is regenerated)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def stores_dir(path: Path) -> Path:
    """Where the stores of the npz cache ``path`` live: ``<name>.stores/`` next to it."""
    return path.with_suffix(".stores")


def _save_stores(path: Path, stores: dict[str, dict[str, VisualStore]]) -> dict[str, dict[str, VisualStore]]:
    """Write every split's stores to ``stores_dir(path)/<split>-<name>/`` (via a temporary folder
    renamed into place) and return them opened memory-mapped from there."""
    final = stores_dir(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        for split, named in stores.items():
            for name, store in named.items():
                store.save(tmp / f"{split}-{name}")
        shutil.rmtree(final, ignore_errors=True)  # stale: its npz was never written
        try:
            os.replace(tmp, final)
        except OSError:  # another process wrote the same (deterministic) stores first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {split: {name: VisualStore.open(final / f"{split}-{name}") for name in named}
            for split, named in stores.items()}


def _open_stores(path: Path, names: np.ndarray) -> dict[str, dict[str, VisualStore]] | None:
    """The cached stores ``names`` (``"<split>/<name>"``) memory-mapped, or None when one is unreadable."""
    out: dict[str, dict[str, VisualStore]] = {s: {} for s in SPLITS}
    for entry in names.tolist():
        split, name = str(entry).split("/", 1)
        try:
            out[split][name] = VisualStore.open(stores_dir(path) / f"{split}-{name}")
        except DataError:
            return None
    return out


def cached_splits(
    path: Path | None, required: tuple[str, ...], generate: Callable[[str], dict]
) -> tuple[dict[str, Split], dict[str, dict[str, np.ndarray]], bool]:
    """The three splits of a generated task: loaded from the npz cache ``path`` when it holds every
    ``required`` array of every split, else ``generate(split) -> arrays`` per split and saved there
    (atomically). Arrays named ``_x`` are not inputs: they come back as ``extra[split]["x"]``. A
    value that is a :class:`~cotrain.data.stores.VisualStore` is the split's store of that name
    (referenced by the row array ``<name>_index``): cached under :func:`stores_dir` (written before
    the npz, so an npz on disk means complete stores) and loaded memory-mapped. A
    :class:`~cotrain.data.ragged.Ragged` value is cached as its values and offsets
    (:func:`split_ragged`) and comes back as a Ragged.
    Returns ``(splits, extra, from_cache)``."""
    flat = _load_npz(path) if path is not None else None
    if flat is not None:
        flat = join_ragged(flat)
    if flat is not None and any(f"{s}/{k}" not in flat for s in SPLITS for k in required):
        flat = None  # not one of ours / incomplete: regenerate
    stores = None
    if flat is not None:
        stores = _open_stores(path, flat.pop("stores", np.zeros(0, dtype=str)))
        if stores is None:
            flat = None  # a store is missing or damaged: regenerate
    cached = flat is not None
    if flat is None:
        generated = {split: generate(split) for split in SPLITS}
        flat = {f"{split}/{k}": v for split, a in generated.items() for k, v in a.items()
                if not isinstance(v, VisualStore)}
        stores = {split: {k: v for k, v in a.items() if isinstance(v, VisualStore)} for split, a in generated.items()}
        if path is not None:
            if any(stores.values()):
                stores = _save_stores(path, stores)
            names = [f"{split}/{name}" for split, named in stores.items() for name in named]
            _save_npz(path, {**split_ragged(flat), "stores": np.asarray(names, dtype=np.str_)})
    splits, extra = {}, {}
    for split in SPLITS:
        arrays = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(split + "/")}
        extra[split] = {k[1:]: arrays.pop(k) for k in list(arrays) if k.startswith("_")}
        splits[split] = Split(arrays, (stores or {}).get(split, {}))
    return splits, extra, cached


def world_meta(name: str, seed: int, params: dict, path: Path | None, cached: bool, extra: dict, **more) -> dict:
    """The ``TaskData.meta`` every world builder writes: how the task was made (``params``, the task
    seed, the split offsets), where it is cached, the per-split arrays that are not inputs
    (``extra``, e.g. which question template made a row) and the builder's own ``more`` keys."""
    meta = {
        "source": "world",
        **more,
        "params": params,
        "task_seed": task_seed(seed, name),
        "index_offsets": dict(SPLIT_OFFSETS),
        "cache_path": None if path is None else str(path),
        "from_cache": cached,
        "extra": extra,
    }
    return meta


def build_world_task(
    name: str,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    cache_dir: str | Path | None,
    image_size: int = 32,
    frames: int = 4,
    sample_rate: int = 8000,
    seconds: float = 1.0,
    progress: bool = False,
) -> TaskData:
    """Generate task ``name`` of the procedural world (see :data:`WORLD_TASKS`).

    Deterministic in its arguments. Example ``i`` of split ``s`` is built from the global index
    ``SPLIT_OFFSETS[s] + i`` (train 0.., val 1,000,000.., test 2,000,000..) and the task seed
    ``task_seed(seed, name)``, so the splits never share a scene. With ``cache_dir`` the arrays are
    saved once to ``cache_dir/<name>-<hash of all arguments>.npz`` and loaded from there afterwards.
    """
    if name not in WORLD_TASKS:
        raise ValueError(f"unknown world task {name!r}; valid names: {', '.join(WORLD_TASKS)}")
    sizes = {
        "train": _check_int("n_train", n_train, 0, MAX_SPLIT_SIZE),
        "val": _check_int("n_val", n_val, 0, MAX_SPLIT_SIZE),
        "test": _check_int("n_test", n_test, 0, MAX_SPLIT_SIZE),
    }
    seed = _check_int("seed", seed, -(2**62), 2**62)
    image_size = _check_int("image_size", image_size, 16, 1024)
    frames = _check_int("frames", frames, 2, 256)
    sample_rate = _check_int("sample_rate", sample_rate, 4000, 192000)
    seconds = float(seconds)
    if not 0.25 <= seconds <= 60.0:
        raise ValueError(f"seconds must lie in [0.25, 60], got {seconds}")
    modality = WORLD_TASKS[name]
    if name == "spoken-digits" and not speech.espeak_available():
        raise DataError(speech.INSTALL_HINT, "espeak-ng")
    cfg = WorldConfig(image_size=image_size, frames=frames, sample_rate=sample_rate, seconds=seconds, progress=progress)
    params = {
        **{f"n_{k}": v for k, v in sizes.items()},
        "seed": seed,
        "image_size": image_size,
        "frames": frames,
        "sample_rate": sample_rate,
        "seconds": seconds,
    }
    if name == "spoken-digits":  # the output depends on the installed engine and voices
        params["espeak"] = speech.speech_fingerprint()
    if name == "detect":  # the scenes are the V&L pool's
        from .vl.build import VL_GENERATOR_VERSION

        params["pool_version"] = VL_GENERATOR_VERSION

    path = Path(cache_dir) / f"{name}-{cache_key(name, params)}.npz" if cache_dir is not None else None
    splits, extra, cached = cached_splits(
        path, REQUIRED.get(name, (modality, "label")),
        lambda split: _GENERATORS[name](name, seed, split, sizes[split], cfg),
    )
    more = TASK_META[name]() if name in TASK_META else {}
    meta = world_meta(name, seed, params, path, cached, extra, **more)  # extra: e.g. digit_index (which sklearn digit)
    return TaskData(
        name=name,
        class_names=list(CLASS_NAMES[name]),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        multilabel=False,
        sample_rate=sample_rate if modality == "audio" else None,
        meta=meta,
    )
