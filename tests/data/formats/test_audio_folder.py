"""read_audio_folder on real wav / flac / ogg files written with soundfile."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cotrain.data.errors import DataError
from cotrain.data.formats.folders import read_audio_folder


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, data: np.ndarray, sr: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, **kw)
    return path


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


def test_resampling_mono_shapes_and_labels(tmp_path):
    root = tmp_path / "tones"
    for i in range(5):
        _write(root / "high" / f"h{i}.wav", _sine(1000, 16000, 1.0), 16000)
        _write(root / "low" / f"l{i}.flac", _sine(440, 16000, 1.0), 16000)
    td = read_audio_folder(root, sample_rate=8000, seconds=1.0, val_fraction=0.2, test_fraction=0.2)
    assert td.inputs == ("audio",) and td.sample_rate == 8000
    assert td.class_names == ["high", "low"]
    assert (len(td.train), len(td.val), len(td.test)) == (6, 2, 2)
    for split in (td.train, td.val, td.test):
        x, y = split.arrays["audio"], split.arrays["label"]
        assert x.dtype == np.float32 and x.shape[1:] == (8000,)
        for wave, label in zip(x, y):
            assert abs(_peak_hz(wave, 8000) - (1000 if label == 0 else 440)) <= 2
            assert 0.45 < np.abs(wave[100:-100]).max() < 0.55  # amplitude kept by resampling


def test_stereo_is_mixed_to_mono(tmp_path):
    root = tmp_path / "st"
    left, right = _sine(300, 8000, 0.5, amp=0.5), _sine(300, 8000, 0.5, amp=0.3)
    for i in range(3):
        _write(root / "a" / f"s{i}.wav", np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    td = read_audio_folder(root, sample_rate=8000, seconds=0.5, val_fraction=0.0, test_fraction=0.0)
    x = td.train.arrays["audio"]
    assert x.shape == (3, 4000)
    np.testing.assert_allclose(x[0], 0.4 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000), atol=1e-5)


def test_centre_crop_and_zero_pad(tmp_path):
    root = tmp_path / "len"
    sr = 1000
    ramp = (np.arange(2 * sr) / (2 * sr)).astype(np.float32)  # 2 s, value = position
    _write(root / "a" / "long.wav", ramp, sr, subtype="FLOAT")
    _write(root / "a" / "short.wav", np.full(sr // 2, 0.25, np.float32), sr, subtype="FLOAT")
    td = read_audio_folder(root, sample_rate=sr, seconds=1.0, val_fraction=0.0, test_fraction=0.0)
    files = td.meta["files"]["train"]
    x = td.train.arrays["audio"]
    long_, short = x[files.index("a/long.wav")], x[files.index("a/short.wav")]
    np.testing.assert_allclose(long_, ramp[sr // 2 : sr // 2 + sr])  # the middle second
    np.testing.assert_allclose(short[: sr // 2], 0.25)
    np.testing.assert_array_equal(short[sr // 2 :], 0.0)


def test_ogg_and_uneven_length(tmp_path):
    root = tmp_path / "ogg"
    _write(root / "c" / "v.ogg", _sine(500, 22050, 0.7), 22050)
    _write(root / "c" / "w.wav", _sine(500, 44100, 0.3), 44100)
    td = read_audio_folder(root, sample_rate=16000, seconds=0.55, val_fraction=0.0, test_fraction=0.0)
    assert td.train.arrays["audio"].shape == (2, 8800)
    assert np.isfinite(td.train.arrays["audio"]).all()


def test_corrupt_wav_is_named(tmp_path):
    root = tmp_path / "bad"
    for i in range(3):
        _write(root / "a" / f"ok{i}.wav", _sine(440, 8000, 0.2), 8000)
    (root / "a" / "garbage_clip.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(DataError, match=re.escape("garbage_clip.wav")):
        read_audio_folder(root, sample_rate=8000, seconds=0.2)


def test_empty_wav_is_named(tmp_path):
    root = tmp_path / "bad"
    _write(root / "a" / "ok.wav", _sine(440, 8000, 0.2), 8000)
    _write(root / "a" / "silent_nothing.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(DataError, match=re.escape("silent_nothing.wav")):
        read_audio_folder(root, sample_rate=8000, seconds=0.2)


def test_empty_audio_class_folder(tmp_path):
    root = tmp_path / "bad"
    _write(root / "a" / "ok.wav", _sine(440, 8000, 0.2), 8000)
    (root / "quiet_class").mkdir()
    with pytest.raises(DataError, match="quiet_class"):
        read_audio_folder(root, sample_rate=8000, seconds=0.2)


def test_missing_audio_folder(tmp_path):
    with pytest.raises(DataError, match="not_there"):
        read_audio_folder(tmp_path / "not_there", sample_rate=8000, seconds=0.2)
