"""One input a user gives to a trained model → the arrays of one example, in the batch layout the
data layer produces — with the data layer's own loaders, so the same file gives the same tensor at
training and at serving time:

- ``image`` / ``video`` / ``audio``: a file path, decoded by :func:`cotrain.data.media.read_media`
  (what the folder readers and the V&L image store call), or an array in the example layout
  (``[3, H, W]`` uint8, ``[T, 3, H, W]`` uint8, ``[S]`` float32); an image also gives ``orig_size``
  int64 ``[2]`` = (height, width) of the picture (after EXIF rotation), as detection data carries it;
- ``text``: a string, tokenised by the experiment's tokenizer as the sources tokenise (``[L]`` ids),
  or an array of ids;
- ``regions``: a region file ``.npz`` (``features`` [R, F], ``boxes`` [R, 4] in pixels, ``image_w``,
  ``image_h`` — the layout of :class:`~cotrain.data.formats.vl.regions.NpzRegionStore`), read by the
  same reader and packed by the same function as the V&L sources (:func:`region_example`), or a dict
  of arrays ``regions`` [R, F], ``boxes`` [R, 4] normalised (+ ``region_mask``).

Every problem is an :class:`~cotrain.errors.InputError` (or a DataError) naming the input and what
was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cotrain.config import ModelConfig
from cotrain.data.errors import DataError
from cotrain.errors import InputError

EXAMPLE_LAYOUT = {"image": "[3, H, W]", "video": "[T, 3, H, W]", "audio": "[S]", "text": "[L] ids",
                  "regions": "{regions [R, F], boxes [R, 4]}"}


def region_example(features: np.ndarray, boxes: np.ndarray, max_regions: int,
                   mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The first ``max_regions`` regions of an image, zero-padded: ``regions`` float32 ``[R, F]``,
    ``boxes`` float32 ``[R, 4]`` (already normalised), ``region_mask`` bool ``[R]``."""
    features = np.asarray(features, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if features.ndim != 2 or boxes.shape != (len(features), 4):
        raise InputError(f"regions must be [R, F] with boxes [R, 4]; got {features.shape} and {boxes.shape}")
    mask = np.ones(len(features), bool) if mask is None else np.asarray(mask, dtype=bool)
    n = min(len(features), max_regions)
    out_f = np.zeros((max_regions, features.shape[1]), np.float32)
    out_b = np.zeros((max_regions, 4), np.float32)
    out_m = np.zeros(max_regions, bool)
    out_f[:n], out_b[:n], out_m[:n] = features[:n], boxes[:n], mask[:n]
    return {"regions": out_f, "boxes": out_b, "region_mask": out_m}


def _media(kind: str, value: Any, cfg: ModelConfig, task: str | None) -> dict[str, np.ndarray]:
    from cotrain.data.media import read_media

    if isinstance(value, (str, Path)):
        enc = cfg.encoders
        params = {
            "image": {"image_size": enc.image.image_size},
            "audio": {"sample_rate": enc.audio.sample_rate, "num_samples": round(enc.audio.seconds * enc.audio.sample_rate)},
            "video": {"frames": enc.video.frames, "image_size": enc.video.image_size},
        }[kind]
        if kind == "image":  # orig_size (height, width): what a detection's boxes are scaled back to
            pixels, (w, h) = read_media(kind, value, task=task, with_size=True, **params)
            return {kind: pixels, "orig_size": np.array([h, w], dtype=np.int64)}
        return {kind: read_media(kind, value, task=task, **params)}
    value = np.asarray(value)
    if kind == "image" and value.ndim == 3:
        return {kind: value, "orig_size": np.array(value.shape[-2:], dtype=np.int64)}
    return {kind: value}


def _text(value: Any, cfg: ModelConfig, tokenizer) -> dict[str, np.ndarray]:
    if isinstance(value, str):
        if tokenizer is None:
            raise InputError("this model has no vocabulary (vocab.txt); it cannot read text")
        return {"text": tokenizer.encode([value], cfg.encoders.text.max_len)[0]}
    return {"text": np.asarray(value, dtype=np.int64)}


def _regions(value: Any, cfg: ModelConfig) -> dict[str, np.ndarray]:
    r = cfg.encoders.regions.max_regions
    if isinstance(value, dict):
        if "regions" not in value or "boxes" not in value:
            raise InputError(f"a region input needs 'regions' [R, F] and 'boxes' [R, 4]; got keys {sorted(value)}")
        return region_example(value["regions"], value["boxes"], r, value.get("region_mask"))
    if not isinstance(value, (str, Path)):
        raise InputError(f"a region input is a .npz file or a dict of arrays; got a {type(value).__name__}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: image input not found")
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: a region model needs region features (.npz), not {path.suffix or 'this file'}")
    from cotrain.data.formats.vl.regions import read_npz_regions

    try:
        rf = read_npz_regions(path)
    except DataError:
        raise
    except Exception as err:  # not an npz / missing arrays: name the file
        raise InputError(f"{path}: cannot read region features ({type(err).__name__}: {err}); expected a .npz "
                         "with features [R, F], boxes [R, 4], image_w, image_h") from err
    return region_example(rf.features, rf.boxes, r)


def load_input(kind: str, value: Any, cfg: ModelConfig, tokenizer=None, task: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of one example of input ``kind`` (see the module docstring); ``cfg`` is ``model:``."""
    if kind in ("image", "video", "audio"):
        return _media(kind, value, cfg, task)
    if kind == "text":
        return _text(value, cfg, tokenizer)
    if kind == "regions":
        return _regions(value, cfg)
    raise InputError(f"unknown input kind {kind!r}; known: {sorted(EXAMPLE_LAYOUT)}")


__all__ = ["EXAMPLE_LAYOUT", "load_input", "region_example"]
