"""Image, audio and video datasets laid out as one sub-folder per class.

Two layouts are accepted::

    path/<class>/<file>                        split here by val_fraction / test_fraction
    path/train/<class>/<file>                  split folders; val/ and test/ are optional,
    path/val/<class>/<file>                    a missing one is carved out of train/ by its
    path/test/<class>/<file>                   fraction

Class names are the sorted class-folder names (class id = position). Files are found recursively
inside a class folder, matched by extension (case-insensitive); hidden files and folders (``.x``,
``__MACOSX``) are ignored, files with other extensions are ignored. Every problem - a missing
folder, no class folders, an empty class folder, class sets that differ between split folders,
an unreadable file - raises :class:`~cotrain.data.errors.DataError` naming the file or folder.
Nothing is skipped silently.

Decoding runs in a small thread pool (Pillow, libsndfile and FFmpeg release the GIL); the result
does not depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from cotrain.data.arrays import Split, TaskData
from cotrain.data.errors import DataError
from cotrain.data.formats.splits import SPLITS, carve_missing_splits
from cotrain.data.media import (  # noqa: F401  (re-exported: the loaders live in cotrain.data.media)
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    fit_length,
    load_audio,
    load_image,
    load_video,
    sample_indices,
)



# ----------------------------------------------------------------------------------- layout
def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name)), key=lambda p: p.name)


def _media_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        for fn in filenames:
            if not _hidden(fn) and os.path.splitext(fn)[1].lower() in exts:
                found.append(Path(dirpath) / fn)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


@dataclass
class FolderLayout:
    """What a scan found: the class names and, per split folder present, ``(file, class id)`` rows."""

    root: Path
    layout: str  # "class_folders" | "split_folders"
    class_names: list[str]
    files: dict[str, list[tuple[Path, int]]]  # only the splits that have a folder (or "train" for class_folders)


def _scan_classes(folder: Path, exts: tuple[str, ...], what: str) -> dict[str, list[Path]]:
    classes = _subdirs(folder)
    if not classes:
        loose = _media_files(folder, exts)
        hint = f" (found {len(loose)} {what} file(s) directly in it; put them in one sub-folder per class)" if loose else ""
        raise DataError(f"no class folders: expected one sub-folder per class{hint}", folder)
    out: dict[str, list[Path]] = {}
    for cdir in classes:
        files = _media_files(cdir, exts)
        if not files:
            raise DataError(f"empty class folder: no {what} files ({', '.join(exts)}) in it", cdir)
        out[cdir.name] = files
    return out


def scan_folder(path: str | os.PathLike, exts: tuple[str, ...], what: str) -> FolderLayout:
    """Find the layout, the classes and the files of a class-folder dataset (no decoding)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{what} folder not found", root)
    if not root.is_dir():
        raise DataError(f"expected a folder of class folders (or train/ val/ test/ folders), got a file", root)
    top = _subdirs(root)
    split_dirs = {d.name: d for d in top if d.name in SPLITS}
    is_split = bool(split_dirs) and any(_subdirs(d) for d in split_dirs.values())
    if not is_split:
        per_class = _scan_classes(root, exts, what)
        names = sorted(per_class)
        rows = [(f, c) for c, n in enumerate(names) for f in per_class[n]]
        return FolderLayout(root, "class_folders", names, {"train": rows})

    if "train" not in split_dirs:
        raise DataError(f"has split folder(s) {sorted(split_dirs)} but no train/ folder", root)
    for d in top:
        if d.name not in SPLITS:
            raise DataError("unexpected folder next to the split folders train/ val/ test/", d)
    scanned = {s: _scan_classes(split_dirs[s], exts, what) for s in SPLITS if s in split_dirs}
    names = sorted(scanned["train"])
    for s in ("val", "test"):
        if s not in scanned:
            continue
        extra = sorted(set(scanned[s]) - set(names))
        if extra:
            raise DataError(
                f"class folder(s) {extra} of {s}/ are absent from train/ (train classes: {names})",
                split_dirs[s] / extra[0],
            )
        missing = sorted(set(names) - set(scanned[s]))
        if missing:
            raise DataError(f"class folder(s) {missing} of train/ are missing from {s}/; class sets must match", split_dirs[s])
    files = {s: [(f, c) for c, n in enumerate(names) for f in per_class[n]] for s, per_class in scanned.items()}
    return FolderLayout(root, "split_folders", names, files)


def assign_splits(
    layout: FolderLayout, *, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[tuple[Path, int]]]:
    """Rows of train / val / test: the split folders as they are, missing ones carved out of train."""
    train = layout.files["train"]
    out = {s: list(layout.files.get(s, [])) for s in SPLITS}
    labels = np.array([c for _, c in train], dtype=np.int64)
    return carve_missing_splits(
        out, labels, layout.class_names, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )


# ----------------------------------------------------------------------------------- decoding
def _num_workers(n: int) -> int:
    return max(1, min(8, os.cpu_count() or 1, n))


def _fill(out: np.ndarray, files: list[Path], load: Callable[[Path], np.ndarray], what: str, bar) -> None:
    """``out[i] = load(files[i])``; any failure becomes a DataError naming the file (first in order)."""

    def job(i: int) -> None:
        f = files[i]
        try:
            arr = load(f)
        except DataError:
            raise
        except Exception as err:  # corrupt / unsupported file: name it, never skip it
            raise DataError(f"cannot read {what} file: {type(err).__name__}: {err}", f) from err
        if arr.shape != out.shape[1:]:  # pragma: no cover - loaders always produce the target shape
            raise DataError(f"decoded to shape {arr.shape}, expected {out.shape[1:]}", f)
        out[i] = arr

    workers = _num_workers(len(files))
    if workers == 1:
        for i in range(len(files)):
            job(i)
            bar.update(1)
        return
    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cotrain-read")
    try:
        for _ in ex.map(job, range(len(files))):
            bar.update(1)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _read_folder(
    path,
    *,
    exts: tuple[str, ...],
    what: str,
    modality: str,
    shape: tuple[int, ...],
    dtype,
    load: Callable[[Path], np.ndarray],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    progress: bool,
    name: str | None,
    sample_rate: int | None = None,
    meta: dict | None = None,
) -> TaskData:
    layout = scan_folder(path, exts, what)
    rows = assign_splits(layout, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    task_name = name or layout.root.resolve().name
    total = sum(len(r) for r in rows.values())
    splits: dict[str, Split] = {}
    with tqdm(total=total, desc=f"{task_name}: reading {what} files", unit="file", disable=not progress) as bar:
        for s in SPLITS:
            files = [f for f, _ in rows[s]]
            data = np.zeros((len(files), *shape), dtype=dtype)
            _fill(data, files, load, what, bar)
            labels = np.array([c for _, c in rows[s]], dtype=np.int64)
            splits[s] = Split({modality: data, "label": labels})
    info = {
        "source": str(layout.root),
        "layout": layout.layout,
        "files": {s: [f.relative_to(layout.root).as_posix() for f, _ in rows[s]] for s in SPLITS},
        **(meta or {}),
    }
    return TaskData(
        name=task_name,
        class_names=list(layout.class_names),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        sample_rate=sample_rate,
        meta=info,
    )


def _check_positive(**kwargs) -> None:
    for k, v in kwargs.items():
        if v is None or v <= 0:
            raise ValueError(f"{k} must be positive, got {v!r}")


# ----------------------------------------------------------------------------------- images
def read_image_folder(
    path,
    *,
    image_size: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    name: str | None = None,
) -> TaskData:
    """Images (png / jpg / jpeg / bmp / gif / webp) → ``image`` uint8 ``[N, 3, S, S]``, RGB, resized
    (not cropped) to ``image_size`` × ``image_size`` with bicubic filtering."""
    _check_positive(image_size=image_size)
    return _read_folder(
        path,
        exts=IMAGE_EXTENSIONS,
        what="image",
        modality="image",
        shape=(3, image_size, image_size),
        dtype=np.uint8,
        load=lambda f: load_image(f, image_size),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        progress=progress,
        name=name,
        meta={"image_size": image_size},
    )


# ----------------------------------------------------------------------------------- audio
def read_audio_folder(
    path,
    *,
    sample_rate: int,
    seconds: float,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    name: str | None = None,
) -> TaskData:
    """Audio (wav / flac / ogg / mp3 via libsndfile) → ``audio`` float32 ``[N, round(seconds *
    sample_rate)]`` mono waveforms at ``sample_rate`` (polyphase resampling); ``sample_rate`` is set
    on the returned TaskData."""
    _check_positive(sample_rate=sample_rate, seconds=seconds)
    sample_rate = int(sample_rate)
    n = int(round(seconds * sample_rate))
    return _read_folder(
        path,
        exts=AUDIO_EXTENSIONS,
        what="audio",
        modality="audio",
        shape=(n,),
        dtype=np.float32,
        load=lambda f: load_audio(f, sample_rate, n),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        progress=progress,
        name=name,
        sample_rate=sample_rate,
        meta={"seconds": float(seconds)},
    )


# ----------------------------------------------------------------------------------- video
def read_video_folder(
    path,
    *,
    frames: int,
    image_size: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    name: str | None = None,
) -> TaskData:
    """Videos (mp4 / avi / mov / mkv / webm via PyAV) → ``video`` uint8 ``[N, frames, 3, S, S]``:
    ``frames`` frames sampled uniformly over each clip (repeated for short clips), resized to
    ``image_size`` × ``image_size``."""
    _check_positive(frames=frames, image_size=image_size)
    return _read_folder(
        path,
        exts=VIDEO_EXTENSIONS,
        what="video",
        modality="video",
        shape=(frames, 3, image_size, image_size),
        dtype=np.uint8,
        load=lambda f: load_video(f, frames, image_size),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        progress=progress,
        name=name,
        meta={"frames": frames, "image_size": image_size},
    )
