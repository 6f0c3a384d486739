"""Decoding one media file into the array layout of the data layer — the one place it happens.

The folder readers, the vision-and-language image store and inference (``cotrain predict``,
:meth:`cotrain.api.Predictor.predict`) all call these functions, so the same file gives the same
tensor at training and at serving time:

- :func:`load_image`: uint8 ``[3, S, S]`` RGB — EXIF rotation applied, transparency composited over
  black, resized (not cropped) to ``S × S`` with bicubic filtering;
- :func:`load_audio`: float32 ``[num_samples]`` mono (channel mean), polyphase-resampled,
  centre-cropped or zero-padded at the end;
- :func:`load_video`: uint8 ``[frames, 3, S, S]`` — every frame of the first video stream
  area-resized, then ``frames`` of them sampled uniformly.

:func:`read_media` wraps them for inputs a user names: a missing, empty or undecodable file, or a
file of another kind (a ``.wav`` given to an image task, a still picture given to a video task),
raises :class:`~cotrain.data.errors.DataError` naming the file and the kind that was expected.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cotrain.data.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "video": VIDEO_EXTENSIONS}
# FFmpeg demuxers that read a single still picture: PyAV happily "decodes" a .jpg as a 1-frame video
_STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe")


# ------------------------------------------------------------------------------------ images
def load_image(path: str | Path, image_size: int) -> np.ndarray:
    """One image file → uint8 ``[3, image_size, image_size]`` (see the module docstring)."""
    return load_image_with_size(path, image_size)[0]


def load_image_with_size(path: str | Path, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`load_image` plus the picture's ``(width, height)`` after EXIF rotation (what boxes
    given in pixels are relative to)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()  # decode now: a truncated / corrupt file fails here, not later
        im = ImageOps.exif_transpose(im)
        size = im.size
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
        im = im.convert("RGB")
        if im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1), size


# ------------------------------------------------------------------------------------- audio
def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop a 1-D signal to ``n`` samples, or zero-pad it at the end."""
    if len(x) > n:
        start = (len(x) - n) // 2
        return x[start : start + n]
    if len(x) < n:
        return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])
    return x


def load_audio(path: str | Path, sample_rate: int, num_samples: int) -> np.ndarray:
    """One audio file → float32 ``[num_samples]`` (see the module docstring)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise DataError("empty audio file (no samples)", path)
    x = data.mean(axis=1, dtype=np.float64)
    if int(file_rate) != sample_rate:
        g = math.gcd(int(file_rate), sample_rate)
        x = resample_poly(x, sample_rate // g, int(file_rate) // g)
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError("audio contains NaN or infinite samples", path)
    return fit_length(x, num_samples)


# ------------------------------------------------------------------------------------- video
def sample_indices(num_frames: int, frames: int) -> np.ndarray:
    """``frames`` indices spread uniformly over ``num_frames`` (segment centres; repeats when the
    clip is shorter than ``frames``), non-decreasing."""
    idx = np.floor((np.arange(frames) + 0.5) * num_frames / frames).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def load_video(path: str | Path, frames: int, image_size: int) -> np.ndarray:
    """One video file → uint8 ``[frames, 3, image_size, image_size]`` (see the module docstring).
    A still picture (which FFmpeg would open as a one-frame video) is refused."""
    import av

    small: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if container.format.name in _STILL_IMAGE_FORMATS:
            raise DataError(f"is a still image ({container.format.name}), not a video", path)
        if not container.streams.video:
            raise DataError("no video stream in file", path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            small.append(
                frame.reformat(width=image_size, height=image_size, format="rgb24", interpolation="AREA").to_ndarray()
            )
    if not small:
        raise DataError("no video frames could be decoded", path)
    clip = np.stack([small[i] for i in sample_indices(len(small), frames)])  # [T, H, W, 3]
    return np.ascontiguousarray(clip.transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------------- user inputs
def read_media(kind: str, path: str | Path, *, task: str | None = None, with_size: bool = False, **params):
    """Decode a file a user named as input of ``kind`` (image / audio / video); ``params`` are the
    loader's (``image_size``; ``sample_rate``, ``num_samples``; ``frames``, ``image_size``).
    ``with_size`` (images): also the picture's ``(width, height)`` after EXIF rotation.

    Every failure is a :class:`DataError` naming the file and the kind the task reads.
    """
    loaders = {"image": load_image_with_size if with_size else load_image, "audio": load_audio, "video": load_video}
    if kind not in loaders:
        raise ValueError(f"cannot read {kind!r} from a file; media kinds: {sorted(loaders)}")
    path = Path(path).expanduser()
    who = f"task {task!r} reads {kind}" if task else f"expected {kind}"
    expected = f"{who} files ({', '.join(EXTENSIONS[kind])})"
    if not path.exists():
        raise DataError(f"input file not found ({expected})", path)
    if not path.is_file():
        raise DataError(f"not a file ({expected})", path)
    if path.stat().st_size == 0:
        raise DataError(f"empty file; {expected}", path)
    other = [k for k, exts in EXTENSIONS.items() if k != kind and path.suffix.lower() in exts]
    if other:
        article = "an" if other[0][0] in "aeiou" else "a"
        raise DataError(f"is {article} {other[0]} file; {expected}", path)
    try:
        return loaders[kind](path, **params)
    except DataError as err:
        raise DataError(f"{err}; {expected}") from err
    except Exception as err:  # undecodable: PIL / libsndfile / FFmpeg each have their own error types
        raise DataError(f"cannot read it as {kind} ({type(err).__name__}: {err}); {expected}", path) from err


__all__ = [
    "AUDIO_EXTENSIONS", "EXTENSIONS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "fit_length", "load_audio",
    "load_image", "load_image_with_size", "load_video", "read_media", "sample_indices",
]
