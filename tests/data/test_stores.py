"""VisualStore: rows stored once, in memory or memory-mapped; the row-by-row writer; the cache folder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.stores import META_FILE, StoreWriter, VisualStore, build_or_open, stack_store

R, F = 3, 5


def _rows(m: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"regions": rng.random((R, F), dtype=np.float32) * 40, "boxes": rng.random((R, 4), dtype=np.float32),
             "region_mask": np.arange(R) < 1 + i % R} for i in range(m)]


def _write(rows, folder=None) -> VisualStore:
    with StoreWriter(len(rows), folder) as w:
        for row in rows:
            w.append(**row)
        return w.close()


@pytest.mark.parametrize("on_disk", [False, True])
def test_writer_stores_each_row_once_regions_as_float16(tmp_path, on_disk):
    rows = _rows(4)
    store = _write(rows, tmp_path / "s" if on_disk else None)
    assert len(store) == 4 and store.mapped == on_disk and sorted(store.keys()) == ["boxes", "region_mask", "regions"]
    assert store.arrays["regions"].dtype == np.float16 and store.arrays["boxes"].dtype == np.float32
    want = np.stack([r["regions"] for r in rows])
    np.testing.assert_array_equal(store.arrays["regions"], want.astype(np.float16))
    np.testing.assert_allclose(store.arrays["regions"], want, rtol=2.0**-11)  # float16: 11 significant bits
    np.testing.assert_array_equal(store.arrays["boxes"], np.stack([r["boxes"] for r in rows]))
    np.testing.assert_array_equal(store.arrays["region_mask"], np.stack([r["region_mask"] for r in rows]))
    if on_disk:  # one .npy per array: a header then exactly M rows
        size = (tmp_path / "s" / "regions.npy").stat().st_size
        assert 4 * R * F * 2 < size <= 4 * R * F * 2 + 128
        assert json.loads((tmp_path / "s" / META_FILE).read_text())["rows"] == 4


def test_saved_store_reopens_memory_mapped_with_the_same_rows(tmp_path):
    store = stack_store({"image": np.arange(6 * 3 * 2 * 2, dtype=np.uint8).reshape(6, 3, 2, 2),
                         "regions": np.linspace(0, 1, 6 * R * F, dtype=np.float32).reshape(6, R, F)})
    saved = store.save(tmp_path / "s")
    again = VisualStore.open(tmp_path / "s")
    assert saved.mapped and again.mapped and not store.mapped
    assert isinstance(again.arrays["image"], np.memmap)
    for key in store.keys():
        np.testing.assert_array_equal(again.arrays[key], store.arrays[key])
    loaded = VisualStore.open(tmp_path / "s", mmap_mode=None)
    assert not loaded.mapped and loaded.arrays["regions"].dtype == np.float16


def test_take_gathers_through_an_index_of_any_shape():
    store = _write(_rows(5))
    flat = store.take(np.array([4, 0, 4]))
    assert flat["regions"].shape == (3, R, F) and flat["region_mask"].shape == (3, R)
    np.testing.assert_array_equal(flat["boxes"], store.arrays["boxes"][[4, 0, 4]])
    views = store.take(np.array([[1, 2], [3, 1], [0, 0]]))  # [B, K]: a view axis
    assert views["regions"].shape == (3, 2, R, F) and views["boxes"].shape == (3, 2, R, 4)
    np.testing.assert_array_equal(views["regions"][1, 0], store.arrays["regions"][3])
    np.testing.assert_array_equal(views["region_mask"][2, 1], store.arrays["region_mask"][0])
    assert store.take(np.zeros((0, 2), np.int64))["regions"].shape == (0, 2, R, F)
    assert list(store.take([2], keys=["boxes"])) == ["boxes"]


def test_take_refuses_bad_indexes():
    store = _write(_rows(3))
    with pytest.raises(IndexError, match=r"index holds \[3\], outside \[0, 3\)"):
        store.take(np.array([0, 3]))
    with pytest.raises(IndexError, match=r"\[-1\]"):
        store.take(np.array([-1]))
    with pytest.raises(TypeError, match="integer array"):
        store.take(np.array([0.0]))
    with pytest.raises(KeyError, match="'image' is not an array"):
        store.take([0], keys=["image"])


def test_writer_errors_name_the_row_and_what_was_expected(tmp_path):
    rows = _rows(2)
    w = StoreWriter(3)
    w.append(**rows[0])
    with pytest.raises(ValueError, match=r"store row 1: 'regions' has shape \[2, 5\], the first row \[3, 5\]"):
        w.append(**{**rows[1], "regions": rows[1]["regions"][:2]})
    with pytest.raises(ValueError, match="store row 1 has arrays"):
        w.append(regions=rows[1]["regions"])
    w.append(**rows[1])
    with pytest.raises(ValueError, match="closed after 2 of its 3 rows"):
        w.close()
    big = {**rows[0], "regions": np.full((R, F), 1e6, np.float32)}
    with pytest.raises(DataError, match=r"beyond float16's range .*half=\(\)"):
        StoreWriter(1, tmp_path / "big").append(**big)
    kept = StoreWriter(1, half=())
    kept.append(**big)
    assert kept.close().arrays["regions"].dtype == np.float32  # float32 kept when asked
    with pytest.raises(ValueError, match="got row 2"):
        one = StoreWriter(1)
        one.append(**rows[0])
        one.append(**rows[1])


def test_open_names_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="not a visual store: no store.json"):
        VisualStore.open(tmp_path)
    _write(_rows(2), tmp_path / "s")
    np.save(tmp_path / "s" / "boxes.npy", np.zeros((3, R, 4), np.float32))
    with pytest.raises(DataError, match=r"boxes\.npy: store array 'boxes' is float32 \[3, 3, 4\]; store.json says"):
        VisualStore.open(tmp_path / "s")


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and head and head[0] == "Rss:":
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_mapped_pages_are_released_after_resident_limit_bytes(tmp_path):
    rows = [{"regions": np.full((64, 512), i, np.float32)} for i in range(64)]  # 64 rows x 64 KiB (float16)
    _write(rows, tmp_path / "s")
    store = VisualStore.open(tmp_path / "s", resident_limit=1 << 40)
    path = (tmp_path / "s" / "regions.npy").resolve()
    got = store.take(np.arange(64))["regions"]
    assert (got[:, 0, 0] == np.arange(64)).all()
    assert _mapped_rss_kb(path) >= 1024  # the pages read are resident in this process ...
    store.release()
    assert _mapped_rss_kb(path) == 0  # ... until released (the page cache keeps them)
    low = VisualStore.open(tmp_path / "s", resident_limit=256 << 10)
    for start in range(0, 64, 8):  # 8 rows = 512 KiB per take: each take releases what it read
        rows = np.arange(start, start + 8)
        np.testing.assert_array_equal(low.take(rows)["regions"][:, 0, 0], rows)
        assert _mapped_rss_kb(path) == 0


def test_build_or_open_builds_once_then_reuses(tmp_path):
    calls = []

    def fill(writer):
        calls.append(1)
        for row in _rows(3):
            writer.append(**row)
        writer.notes["made_by"] = "fill"

    store, reused = build_or_open(tmp_path / "c", 3, fill)
    again, reused_again = build_or_open(tmp_path / "c", 3, fill)
    assert (reused, reused_again) == (False, True) and calls == [1] and again.mapped
    assert again.notes == {"made_by": "fill"}
    np.testing.assert_array_equal(again.arrays["regions"], store.arrays["regions"])
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary folder left


def test_build_or_open_leaves_nothing_behind_when_the_build_fails(tmp_path):
    def fill(writer):
        writer.append(**_rows(1)[0])
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        build_or_open(tmp_path / "c", 3, fill)
    assert list(tmp_path.iterdir()) == []


def test_pickled_stores_reopen_their_folder_or_carry_their_arrays(tmp_path):
    mapped = _write(_rows(3), tmp_path / "s")
    mapped.notes["k"] = [1]
    blob = pickle.dumps(mapped)
    assert len(blob) < 2000  # the folder, not the rows
    back = pickle.loads(blob)
    assert back.mapped and back.folder == tmp_path / "s" and back.notes == {"k": [1]}
    np.testing.assert_array_equal(back.take([2, 0])["regions"], mapped.take([2, 0])["regions"])
    memory = _write(_rows(2))
    again = pickle.loads(pickle.dumps(memory))
    assert not again.mapped
    np.testing.assert_array_equal(again.arrays["boxes"], memory.arrays["boxes"])
