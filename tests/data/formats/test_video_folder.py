"""read_video_folder on real video files encoded with PyAV."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.folders import read_video_folder, sample_indices

BRIGHT = [20 + 30 * k for k in range(8)]  # frame k of a "ramp" clip is grey level BRIGHT[k]


def _write_clip(path: Path, frames: list[np.ndarray], codec: str = "mpeg4", fps: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 4_000_000
        stream.time_base = Fraction(1, fps)
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _ramp(n=8, size=(32, 32)) -> list[np.ndarray]:
    return [np.full((*size, 3), BRIGHT[k], np.uint8) for k in range(n)]


def _solid(rgb, n=8, size=(32, 48)) -> list[np.ndarray]:
    return [np.full((*size, 3), rgb, np.uint8) for _ in range(n)]


def _means(clip: np.ndarray) -> np.ndarray:
    return clip.reshape(len(clip), -1).mean(1)


def test_sample_indices():
    assert sample_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert sample_indices(8, 8).tolist() == list(range(8))
    assert sample_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sample_indices(1, 3).tolist() == [0, 0, 0]


def test_frames_in_order_shapes_and_labels(tmp_path):
    root = tmp_path / "clips"
    _write_clip(root / "ramp" / "r0.mp4", _ramp())
    _write_clip(root / "ramp" / "r1.mkv", _ramp(), codec="libx264")
    _write_clip(root / "red" / "red0.mp4", _solid((200, 20, 20)))
    _write_clip(root / "red" / "red1.avi", _solid((200, 20, 20)))
    td = read_video_folder(root, frames=8, image_size=16, val_fraction=0.0, test_fraction=0.0)
    assert td.inputs == ("video",) and td.class_names == ["ramp", "red"]
    v, y = td.train.arrays["video"], td.train.arrays["label"]
    assert v.dtype == np.uint8 and v.shape == (4, 8, 3, 16, 16)
    assert y.tolist() == [0, 0, 1, 1]
    for clip in v[:2]:  # every frame decoded in order with its own brightness
        np.testing.assert_allclose(_means(clip), BRIGHT, atol=4)
    for clip in v[2:]:  # RGB channel order kept
        np.testing.assert_allclose(clip.reshape(8, 3, -1).mean(-1), [[200, 20, 20]] * 8, atol=6)


def test_uniform_sampling_and_repeats(tmp_path):
    root = tmp_path / "clips"
    for i in range(3):
        _write_clip(root / "ramp" / f"r{i}.mp4", _ramp())
    td = read_video_folder(root, frames=4, image_size=8, val_fraction=0.0, test_fraction=0.0)
    assert td.train.arrays["video"].shape == (3, 4, 3, 8, 8)
    np.testing.assert_allclose(_means(td.train.arrays["video"][0]), [BRIGHT[i] for i in (1, 3, 5, 7)], atol=4)

    td = read_video_folder(root, frames=12, image_size=8, val_fraction=0.0, test_fraction=0.0, progress=True)
    m = _means(td.train.arrays["video"][0])
    np.testing.assert_allclose(m, [BRIGHT[i] for i in sample_indices(8, 12)], atol=4)
    assert np.all(np.diff(m) > -1)  # repeats, never going back in time


def test_split_of_videos(tmp_path):
    root = tmp_path / "clips"
    for c in ("a", "b"):
        for i in range(5):
            _write_clip(root / c / f"{c}{i}.mp4", _ramp(n=2, size=(16, 16)))
    td = read_video_folder(root, frames=2, image_size=8, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert (len(td.train), len(td.val), len(td.test)) == (6, 2, 2)
    assert td.val.arrays["video"].shape == (2, 2, 3, 8, 8)


def test_corrupt_video_is_named(tmp_path):
    root = tmp_path / "clips"
    _write_clip(root / "a" / "fine.mp4", _ramp(n=2))
    (root / "a" / "mangled_clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 300)
    with pytest.raises(DataError, match=re.escape("mangled_clip.mp4")):
        read_video_folder(root, frames=2, image_size=8)


def test_audio_only_file_is_named(tmp_path):
    root = tmp_path / "clips"
    _write_clip(root / "a" / "fine.mp4", _ramp(n=2))
    path = root / "a" / "sound_only.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in stream.encode(frame):
            out.mux(p)
        for p in stream.encode():
            out.mux(p)
    with pytest.raises(DataError, match=re.escape("sound_only.mkv") + ".*no video stream"):
        read_video_folder(root, frames=2, image_size=8)


def test_no_class_folders_for_video(tmp_path):
    root = tmp_path / "loose_videos"
    _write_clip(root / "x.mp4", _ramp(n=2))
    with pytest.raises(DataError, match="loose_videos.*1 video file"):
        read_video_folder(root, frames=2, image_size=8)
