"""Tasks of the procedural world: contract, determinism, splits, cache, errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.world import WORLD_TASKS, build_world_task, espeak_available
from cotrain.data.world import speech

SMALL = dict(n_train=24, n_val=12, n_test=12)
# the classification tasks that need no speech engine (detect: tests/data/world/test_world_detect.py)
NON_SPEECH = [t for t in WORLD_TASKS if t not in ("spoken-digits", "detect")]


def build(name, seed=0, cache_dir=None, **kw):
    args = {**SMALL, **kw}
    return build_world_task(name, seed=seed, cache_dir=cache_dir, **args)


def test_task_table():
    assert WORLD_TASKS == {
        "shapes": "image",
        "count": "image",
        "digits": "image",
        "motion": "video",
        "moving-digits": "video",
        "sounds": "audio",
        "spoken-digits": "audio",
        "detect": "image",
    }


@pytest.mark.parametrize("name", NON_SPEECH)
def test_arrays_follow_the_contract(name):
    td = build(name, image_size=24, frames=3, sample_rate=4000, seconds=0.5)
    assert td.name == name and td.inputs == (WORLD_TASKS[name],)
    assert all(isinstance(c, str) and c for c in td.class_names)
    assert len(set(td.class_names)) == td.num_classes
    for split, n in (("train", 24), ("val", 12), ("test", 12)):
        arrays = td.split(split).arrays
        assert set(arrays) == {td.inputs[0], "label"}
        x, y = arrays[td.inputs[0]], arrays["label"]
        assert y.dtype == np.int64 and y.shape == (n,)
        assert y.min() >= 0 and y.max() < td.num_classes
        if td.inputs[0] == "image":
            assert x.dtype == np.uint8 and x.shape == (n, 3, 24, 24)
        elif td.inputs[0] == "video":
            assert x.dtype == np.uint8 and x.shape == (n, 3, 3, 24, 24)
        else:
            assert x.dtype == np.float32 and x.shape == (n, 2000)
            assert np.abs(x).max() <= 1.0
            assert td.sample_rate == 4000
    if td.inputs[0] != "audio":
        assert td.sample_rate is None
    assert not td.multilabel


def test_class_names():
    assert build("shapes").class_names == ["circle", "square", "triangle", "diamond", "cross", "star"]
    assert build("count").class_names == ["1", "2", "3", "4", "5", "6"]
    assert build("digits").class_names[0] == "zero" and len(build("digits").class_names) == 10
    assert build("motion").class_names == ["left", "right", "up", "down", "grow", "shrink"]
    assert build("sounds").num_classes == 6


@pytest.mark.parametrize("name", NON_SPEECH)
def test_deterministic_and_seed_dependent(name):
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    for split in ("train", "val", "test"):
        for key in a.split(split).arrays:
            np.testing.assert_array_equal(a.split(split).arrays[key], b.split(split).arrays[key])
    assert not np.array_equal(a.train.arrays[a.inputs[0]], c.train.arrays[c.inputs[0]])


@pytest.mark.parametrize("name", ["shapes", "count", "motion", "sounds"])
def test_prefix_stable_across_split_sizes(name):
    """Example i depends on (seed, index) only, not on how many examples are asked for."""
    small, big = build(name, n_train=10), build(name, n_train=30)
    np.testing.assert_array_equal(small.train.arrays[small.inputs[0]], big.train.arrays[big.inputs[0]][:10])
    np.testing.assert_array_equal(small.test.arrays["label"], big.test.arrays["label"])


@pytest.mark.parametrize("name", ["shapes", "count", "motion", "sounds"])
def test_labels_balanced(name):
    td = build(name, n_train=120, n_val=31, n_test=17)
    for split in ("train", "val", "test"):
        counts = np.bincount(td.split(split).arrays["label"], minlength=td.num_classes)
        assert counts.max() - counts.min() <= 1, (split, counts)


@pytest.mark.parametrize("name", ["digits", "moving-digits"])
def test_digit_labels_roughly_uniform(name):
    td = build(name, n_train=400)
    counts = np.bincount(td.train.arrays["label"], minlength=10)
    assert counts.min() >= 25 and counts.max() <= 55


def _row_hashes(x):
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in x}


@pytest.mark.parametrize("name", NON_SPEECH)
def test_splits_disjoint(name):
    td = build(name, n_train=60, n_val=20, n_test=20)
    h = {s: _row_hashes(td.split(s).arrays[td.inputs[0]]) for s in ("train", "val", "test")}
    assert len(h["train"]) == 60  # no duplicates inside a split either
    assert not h["train"] & h["test"] and not h["train"] & h["val"] and not h["val"] & h["test"]


@pytest.mark.parametrize("name,sizes", [("digits", (1400, 300, 300)), ("moving-digits", (200, 100, 100))])
def test_real_digit_pools_disjoint(name, sizes):
    td = build(name, n_train=sizes[0], n_val=sizes[1], n_test=sizes[2])
    used = {s: td.meta["extra"][s]["digit_index"] for s in ("train", "val", "test")}
    sets = {s: set(v.tolist()) for s, v in used.items()}
    assert not sets["train"] & sets["test"] and not sets["train"] & sets["val"] and not sets["val"] & sets["test"]
    if name == "digits":  # more examples than the pools hold: every real digit used, some twice
        assert len(sets["train"]) == 1258 and len(sets["val"]) == 269 and len(sets["test"]) == 270
        assert len(used["train"]) == 1400


def test_cache_roundtrip(tmp_path):
    a = build("count", cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("count-") and files[0].suffix == ".npz"
    assert not a.meta["from_cache"] and a.meta["cache_path"] == str(files[0])
    b = build("count", cache_dir=tmp_path)
    assert b.meta["from_cache"]
    for split in ("train", "val", "test"):
        for key in ("image", "label"):
            np.testing.assert_array_equal(a.split(split).arrays[key], b.split(split).arrays[key])
    build("count", seed=1, cache_dir=tmp_path)
    build("count", image_size=24, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # other arguments, other files; no temp files left


def test_cache_keeps_extra_meta(tmp_path):
    a = build("digits", cache_dir=tmp_path)
    b = build("digits", cache_dir=tmp_path)
    assert b.meta["from_cache"]
    np.testing.assert_array_equal(a.meta["extra"]["test"]["digit_index"], b.meta["extra"]["test"]["digit_index"])
    assert set(b.test.arrays) == {"image", "label"}


def test_corrupt_cache_is_regenerated(tmp_path):
    a = build("sounds", cache_dir=tmp_path)
    path = tmp_path / a.meta["cache_path"].split("/")[-1]
    path.write_bytes(b"not a zip file")
    b = build("sounds", cache_dir=tmp_path)
    assert not b.meta["from_cache"]
    np.testing.assert_array_equal(a.train.arrays["audio"], b.train.arrays["audio"])
    assert build("sounds", cache_dir=tmp_path).meta["from_cache"]


def test_unknown_task():
    with pytest.raises(ValueError) as err:
        build("colours")
    for name in WORLD_TASKS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "kw",
    [dict(n_train=-1), dict(frames=1), dict(image_size=8), dict(seconds=0.0), dict(sample_rate=100), dict(n_test=2.5)],
)
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        build("motion", **kw)


def test_spoken_digits_without_espeak(monkeypatch):
    monkeypatch.setattr(speech, "_espeak_version", lambda: None)
    assert not espeak_available()
    with pytest.raises(DataError) as err:
        build("spoken-digits")
    assert "espeak-ng" in str(err.value) and "apt-get install espeak-ng" in str(err.value)


def test_spoken_digits():
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); spoken-digits cannot be generated")
    td = build("spoken-digits", n_train=30, n_val=10, n_test=10, sample_rate=8000, seconds=1.0)
    assert td.sample_rate == 8000 and td.num_classes == 10 and td.class_names[3] == "three"
    x, y = td.train.arrays["audio"], td.train.arrays["label"]
    assert x.dtype == np.float32 and x.shape == (30, 8000)
    assert np.bincount(y, minlength=10).tolist() == [3] * 10
    assert np.abs(x).max() <= 1.0
    # every clip holds a word far above its noise floor
    frames = np.sqrt((x.reshape(30, 80, 100) ** 2).mean(axis=2))  # 12.5 ms frames
    assert (frames.max(axis=1) > 0.04).all()
    assert (frames.max(axis=1) > 3 * np.percentile(frames, 10, axis=1)).all()
    again = build("spoken-digits", n_train=30, n_val=10, n_test=10)
    np.testing.assert_array_equal(x, again.train.arrays["audio"])
    assert not _row_hashes(x) & _row_hashes(td.test.arrays["audio"])
