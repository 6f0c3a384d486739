"""The stratified, seeded split shared by the readers."""

from __future__ import annotations

import numpy as np
import pytest

from cotrain.data.formats.splits import split_counts, stratified_split


def test_split_counts():
    assert split_counts(10, 0.1, 0.1) == (8, 1, 1)
    assert split_counts(5, 0.1, 0.1) == (3, 1, 1)  # at least one each when the fraction is > 0
    assert split_counts(25, 0.1, 0.0) == (22, 3, 0)  # 2.5 rounds half up
    assert split_counts(1, 0.5, 0.4) == (1, 0, 0)  # a lone example trains
    assert split_counts(2, 0.5, 0.4) == (1, 0, 1)  # val gives way first
    assert split_counts(0, 0.1, 0.1) == (0, 0, 0)
    with pytest.raises(ValueError):
        split_counts(10, 1.0, 0.0)


def test_stratified_split_is_a_partition_and_class_independent():
    labels = np.repeat([0, 1, 2], [20, 30, 7])
    names = ["a", "b", "c"]
    parts = stratified_split(labels, names, val_fraction=0.2, test_fraction=0.1, seed=5)
    allidx = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert sorted(allidx.tolist()) == list(range(len(labels)))
    assert np.bincount(labels[parts["val"]]).tolist() == [4, 6, 1]
    assert np.bincount(labels[parts["test"]]).tolist() == [2, 3, 1]
    again = stratified_split(labels, names, val_fraction=0.2, test_fraction=0.1, seed=5)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    # dropping class "a" leaves the split of "b" unchanged (rows shift by 20)
    sub = stratified_split(labels[20:] - 1, names[1:], val_fraction=0.2, test_fraction=0.1, seed=5)
    b_val = parts["val"][labels[parts["val"]] == 1] - 20
    np.testing.assert_array_equal(sub["val"][labels[20:][sub["val"]] == 1], b_val)
