"""The mined-candidates file: written and read back, swapped into a retrieval train split, refused
(naming the file and the first difference) when it belongs to other data."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_synthetic import N, split

from cotrain.data.arrays import Split
from cotrain.data.errors import DataError
from cotrain.data.mined import FORMAT, MinedCandidates, apply_mined, read_mined, write_mined
from cotrain.data.negatives import NegativeSampler


def mined(n: int = N, c: int = 3) -> MinedCandidates:
    """Row r (image 100 + r): candidates the images of rows r+5, r+7 (mod n), then none."""
    r = np.arange(n)
    cand = np.stack([100 + (r + 5) % n, 100 + (r + 7) % n, np.full(n, -1)], axis=1)[:, :c]
    score = np.where(cand >= 0, 1.0 - np.arange(c)[None] / 10, np.nan).astype(np.float32)
    return MinedCandidates(100 + r, cand, score, np.full(n, 2.0, np.float32), {"task": "coco", "step": "7"})


def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    path = write_mined(tmp_path / "sub" / "m.safetensors", mined())
    back = read_mined(path)
    want = mined()
    for key in ("caption_image_id", "candidate_id", "score", "own_score"):
        np.testing.assert_array_equal(getattr(back, key), getattr(want, key))
    assert back.metadata == {"task": "coco", "step": "7", "format": FORMAT}
    assert len(back) == N and back.per_caption == 3


def test_apply_swaps_the_candidates_for_store_rows_of_the_mined_images(tmp_path):
    s = split()
    path = write_mined(tmp_path / "m.safetensors", mined())
    out = apply_mined(s, path, task="coco")
    ids, index = out.arrays["candidate_id"], out.arrays["candidate_index"]
    r = np.arange(N)
    np.testing.assert_array_equal(ids[:, :2], np.stack([100 + (r + 5) % N, 100 + (r + 7) % N], axis=1))
    assert (ids[:, 2] == -1).all() and (index[:, 2] == -1).all()
    # split(): store row j holds image 100 + j, its regions all equal to j
    np.testing.assert_array_equal(index[:, :2], ids[:, :2] - 100)
    gathered = out.take(r, views={"visual": index[:, :2]})["regions"][:, :, 0, 0].numpy()
    np.testing.assert_array_equal(gathered, ids[:, :2] - 100)
    for key in ("text", "image_id", "visual_index", "label"):  # everything else untouched
        np.testing.assert_array_equal(out.arrays[key], s.arrays[key])
    assert out.stores is s.stores
    # the sampler now draws its hard negatives from the mined images only
    views, got = NegativeSampler(2, "per_epoch").draw(out, r, seed=0, epoch=0, batch=0)
    assert all(set(got[i, 1:]) == set(ids[i, :2]) for i in r)
    # keep: only the first columns (the hardest)
    first = apply_mined(s, path, task="coco", keep=1)
    np.testing.assert_array_equal(first.arrays["candidate_id"], ids[:, :1])


def test_a_file_from_other_data_is_refused_naming_file_and_row(tmp_path):
    s = split()
    short = write_mined(tmp_path / "short.safetensors", mined(n=N - 2))
    with pytest.raises(DataError, match=rf"short.safetensors: mined for {N - 2} training captions but task 'coco' has {N}"):
        apply_mined(s, short, task="coco")
    m = mined()
    m.caption_image_id[4] = 999
    with pytest.raises(DataError, match=r"other.safetensors: row 4 was mined for image 999 .* shows image 104 \(1 rows"):
        apply_mined(s, write_mined(tmp_path / "other.safetensors", m), task="coco")
    m = mined()
    m.candidate_id[2, 1] = 555
    with pytest.raises(DataError, match=r"row 2's candidate image 555 is not an image of task 'coco'"):
        apply_mined(s, write_mined(tmp_path / "unknown.safetensors", m), task="coco")
    m = mined()
    m.candidate_id[3, 0] = 103
    with pytest.raises(DataError, match=r"row 3 lists its own image 103"):
        apply_mined(s, write_mined(tmp_path / "own.safetensors", m), task="coco")
    plain = Split({"text": np.ones((N, 2), np.int64), "label": np.zeros(N, np.int64)})
    with pytest.raises(DataError, match="needs a retrieval train split"):
        apply_mined(plain, tmp_path / "own.safetensors", task="coco")


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nope.safetensors \(write one with `cotrain data mine"):
        read_mined(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(DataError, match=r"bad.safetensors: not a mined candidates file"):
        read_mined(bad)
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3)}, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"format 'pt', expected 'cotrain-mined-candidates/1'"):
        read_mined(tmp_path / "model.safetensors")
    save_file({"caption_image_id": np.zeros(3, np.int64)}, str(tmp_path / "part.safetensors"), metadata={"format": FORMAT})
    with pytest.raises(DataError, match=r"part.safetensors: mined candidates file lacks candidate_id, score, own_score"):
        read_mined(tmp_path / "part.safetensors")
