"""Decoding one media file (cotrain.data.media): the loaders the data layer and inference share, and
the checks on files a user names as input."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from cotrain.data.errors import DataError
from cotrain.data.media import load_image, load_video, read_media

AUDIO = {"sample_rate": 8000, "num_samples": 4000}
VIDEO = {"frames": 4, "image_size": 16}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "pic.png")
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "pic.jpg")
    sf.write(tmp_path / "tone.wav", np.sin(np.arange(8000) / 5).astype(np.float32), 8000)
    (tmp_path / "notes.txt").write_text("not a picture\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG but not really" * 10)
    with av.open(str(tmp_path / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return tmp_path


def test_a_good_file_decodes_as_the_data_layer_decodes_it(files):
    np.testing.assert_array_equal(read_media("image", files / "pic.png", image_size=16), load_image(files / "pic.png", 16))
    assert read_media("audio", files / "tone.wav", **AUDIO).shape == (4000,)
    np.testing.assert_array_equal(read_media("video", files / "clip.mp4", **VIDEO), load_video(files / "clip.mp4", **VIDEO))


@pytest.mark.parametrize(
    "kind, name, params, message",
    [
        ("image", "notes.txt", {"image_size": 16}, "cannot read it as image"),
        ("image", "empty.png", {"image_size": 16}, "empty file"),
        ("image", "garbage.png", {"image_size": 16}, "cannot read it as image"),
        ("image", "tone.wav", {"image_size": 16}, "is an audio file"),
        ("image", "clip.mp4", {"image_size": 16}, "is a video file"),
        ("image", "absent.png", {"image_size": 16}, "input file not found"),
        ("audio", "pic.jpg", AUDIO, "is an image file"),
        ("audio", "notes.txt", AUDIO, "cannot read it as audio"),
        ("video", "pic.jpg", VIDEO, "is an image file"),
        ("video", "notes.txt", VIDEO, "cannot read it as video"),
    ],
)
def test_a_bad_input_names_the_file_and_the_expected_kind(files, kind, name, params, message):
    with pytest.raises(DataError, match=message) as err:
        read_media(kind, files / name, task="mytask", **params)
    text = str(err.value)
    assert str(files / name) in text and f"task 'mytask' reads {kind} files" in text


def test_a_still_picture_is_not_a_video_whatever_its_name(files):
    # FFmpeg opens a picture as a one-frame video; renamed to .mp4 it must still be refused
    (files / "still.mp4").write_bytes((files / "pic.png").read_bytes())
    with pytest.raises(DataError, match="still image"):
        read_media("video", files / "still.mp4", **VIDEO)
