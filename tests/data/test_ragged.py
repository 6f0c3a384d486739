"""Ragged: variable-length rows as flat values + offsets."""

from __future__ import annotations

import numpy as np
import pytest

from cotrain.data.ragged import Ragged


def test_rows_from_lists_and_back():
    rows = [np.array([[0, 0, 1, 1]], np.float32), np.zeros((0, 4), np.float32), np.arange(12, dtype=np.float32).reshape(3, 4)]
    r = Ragged.from_rows(rows)
    assert len(r) == 3 and r.offsets.tolist() == [0, 1, 1, 4] and r.values.shape == (4, 4)
    assert r.lengths().tolist() == [1, 0, 3]
    for got, want in zip(r.rows(slice(None)), rows):
        np.testing.assert_array_equal(got, want)
    picked = r[np.array([2, 0])]
    assert picked.lengths().tolist() == [3, 1]
    np.testing.assert_array_equal(picked.row(0), rows[2])
    assert r[np.array([False, True, False])].lengths().tolist() == [0]


def test_all_empty_rows_keep_their_layout():
    r = Ragged.from_rows([[], []], dtype=np.int64)
    assert len(r) == 2 and r.values.shape == (0,) and r.dtype == np.int64
    boxes = Ragged.from_rows([np.zeros((0, 4))], dtype=np.float32, row_shape=(4,))
    assert boxes.values.shape == (0, 4) and boxes.row(0).shape == (0, 4)


def test_bad_offsets_are_refused():
    with pytest.raises(ValueError, match="end at len\\(values\\) = 3"):
        Ragged(np.zeros(3), np.array([0, 2]))
    with pytest.raises(ValueError, match="never decrease"):
        Ragged(np.zeros(3), np.array([0, 2, 1, 3]))
    with pytest.raises(ValueError, match="integer array"):
        Ragged(np.zeros(3), np.array([0.0, 3.0]))
