import numpy as np
import pytest

from cotrain.data.clean_split import apply_keep, clean_splits, clean_task_data, format_clean_report


def ids(*v):
    return np.array(v, dtype=np.int64)


def fixture():
    """Test pool = {10, 11} (vqa) | {3, 15} (refcoco) | {30, 31} (nlvr) | {44} (flickr)."""
    return {
        "vqa": {"train": ids(1, 2, 3, 4, 5, 1), "val": ids(6, 7), "test": ids(10, 11)},
        "refcoco": {"train": ids(10, 2, 12, 13), "val": ids(11, 14), "test": ids(3, 15)},
        # two images per row: a row goes if either image is a test image
        "nlvr": {"train": np.array([[20, 21], [3, 22], [23, 15], [24, 25]]), "val": np.array([[26, 27]]),
                 "test": np.array([[30, 31]])},
        "flickr": {"train": ids(40, 41, 42), "val": ids(43), "test": ids(44)},  # no overlap at all
    }


def test_keep_masks_by_hand():
    cleaned, report = clean_splits(fixture())
    assert set(cleaned) == {"vqa", "refcoco", "nlvr", "flickr"}
    assert cleaned["vqa"]["train"].tolist() == [True, True, False, True, True, True]  # 3 is refcoco's test
    assert cleaned["vqa"]["val"].tolist() == [True, True]
    assert cleaned["refcoco"]["train"].tolist() == [False, True, True, True]  # 10 is vqa's test
    assert cleaned["refcoco"]["val"].tolist() == [False, True]  # 11 is vqa's test
    assert cleaned["nlvr"]["train"].tolist() == [True, False, False, True]
    assert cleaned["nlvr"]["val"].tolist() == [True]
    assert cleaned["flickr"]["train"].all() and cleaned["flickr"]["val"].all()
    assert all(m.dtype == bool for task in cleaned.values() for m in task.values())
    assert set(cleaned["vqa"]) == {"train", "val"}  # test splits are never touched


def test_report_by_hand():
    _, report = clean_splits(fixture())
    vqa = report["tasks"]["vqa"]
    assert vqa["train"] == {"rows_before": 6, "rows_after": 5, "images_before": 5, "images_after": 4,
                            "removed_pct": pytest.approx(100 / 6)}
    assert vqa["val"]["rows_after"] == 2 and vqa["val"]["removed_pct"] == 0.0
    assert vqa["test"] == {"rows_before": 2, "rows_after": 2, "images_before": 2, "images_after": 2,
                           "removed_pct": 0.0}
    assert vqa["train+val"] == {"rows_before": 8, "rows_after": 7, "images_before": 7, "images_after": 6,
                                "removed_pct": pytest.approx(12.5)}
    nlvr = report["tasks"]["nlvr"]
    assert nlvr["train"]["images_before"] == 8 and nlvr["train"]["images_after"] == 4
    assert nlvr["train+val"]["removed_pct"] == pytest.approx(40.0)
    assert report["tasks"]["refcoco"]["train+val"]["removed_pct"] == pytest.approx(100 / 3)
    assert report["tasks"]["flickr"]["train+val"]["removed_pct"] == 0.0
    assert report["test_images"] == 7
    assert (report["rows_before"], report["rows_after"]) == (23, 18)
    assert report["total_reduction_pct"] == pytest.approx(500 / 23)
    assert report["mean_reduction_pct"] == pytest.approx((12.5 + 100 / 3 + 40 + 0) / 4)


def test_overlap_matrix_is_table_one():
    _, report = clean_splits(fixture())
    ov = report["overlap"]
    assert ov["vqa"] == {"vqa": 0.0, "refcoco": 100.0, "nlvr": 0.0, "flickr": 0.0}
    assert ov["refcoco"] == {"vqa": 50.0, "refcoco": 0.0, "nlvr": 100.0, "flickr": 0.0}
    assert ov["nlvr"] == {t: 0.0 for t in ov} and ov["flickr"] == {t: 0.0 for t in ov}


def test_only_selected_tasks_test_splits_count():
    data = fixture()
    cleaned, report = clean_splits({"vqa": data["vqa"], "flickr": data["flickr"]})
    assert cleaned["vqa"]["train"].all()  # image 3 is only a test image of refcoco, not selected
    assert report["total_reduction_pct"] == 0.0


def test_apply_keep_and_idempotence():
    data = fixture()
    cleaned, _ = clean_splits(data)
    text = np.arange(4 * 3).reshape(4, 3)
    out = apply_keep({"image_id": data["nlvr"]["train"], "text": text}, cleaned["nlvr"]["train"])
    assert out["image_id"].tolist() == [[20, 21], [24, 25]]
    assert out["text"].tolist() == [[0, 1, 2], [9, 10, 11]]
    once = {t: {s: (apply_keep({"i": d[s]}, cleaned[t][s])["i"] if s != "test" else d[s]) for s in d}
            for t, d in data.items()}
    again, report = clean_splits(once)
    assert all(m.all() for task in again.values() for m in task.values())
    assert report["total_reduction_pct"] == 0.0 and report["rows_before"] == 18


def test_empty_splits_are_allowed():
    data = fixture()
    data["flickr"]["val"] = np.zeros(0, dtype=np.int64)
    data["nlvr"]["val"] = np.zeros((0, 2), dtype=np.int64)
    cleaned, report = clean_splits(data)
    assert cleaned["flickr"]["val"].shape == (0,) and cleaned["nlvr"]["val"].shape == (0,)
    assert report["tasks"]["flickr"]["val"]["removed_pct"] == 0.0


def test_format_report_is_a_markdown_table():
    _, report = clean_splits(fixture())
    text = format_clean_report(report)
    assert "| vqa | train | 6 | 5 | 16.7 | 5 | 4 |" in text
    assert "| nlvr | train+val | 5 | 3 | 40.0 | 10 | 6 |" in text
    assert "23 -> 18 (21.7% fewer pooled, 21.5% mean per task)" in text
    assert "| refcoco | 50% | 0% | 100% | 0% |" in text


def test_errors_name_the_bad_value():
    data = fixture()
    del data["vqa"]["val"]
    with pytest.raises(ValueError, match="task 'vqa': need exactly the splits .* missing \\['val'\\]"):
        clean_splits(data)
    data = fixture()
    data["flickr"]["train"] = np.array([1.5, 2.0])
    with pytest.raises(ValueError, match="task 'flickr' split 'train': image_id must be integers, got dtype float64"):
        clean_splits(data)
    data = fixture()
    data["nlvr"]["test"] = np.zeros((1, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="got shape \\(1, 2, 2\\)"):
        clean_splits(data)
    with pytest.raises(ValueError, match="array 'x' has 3 rows but the mask has 2"):
        apply_keep({"x": np.arange(3)}, np.array([True, False]))
    with pytest.raises(ValueError, match="1-D boolean mask, got dtype int64"):
        apply_keep({"x": np.arange(2)}, np.array([1, 0]))


def test_hard_candidates_in_a_test_split_are_masked_not_their_rows():
    from cotrain.data.arrays import Split, TaskData
    from cotrain.data.stores import VisualStore

    store = VisualStore({"image": np.zeros((8, 3, 2, 2), np.uint8)})  # store row j shows image 10 + j

    def split(own, cand=None):
        arrays = {"image_id": 10 + np.asarray(own), "visual_index": np.asarray(own), "label": np.zeros(len(own), np.int64)}
        if cand is not None:
            arrays.update(candidate_index=np.asarray(cand), candidate_id=10 + np.asarray(cand))
        return Split(arrays, {"visual": store})

    # test images: 15 (ir), 16 and 17 (q)
    ir = TaskData("ir", ["match"], split([0, 1, 2, 5], [[1, 5, 2], [0, 6, 5], [7, 0, 1], [0, 1, 2]]), split([3]),
                  split([5]))
    other = TaskData("q", ["a"], split([4, 6]), split([0]), split([6, 7]))
    report = clean_task_data({"ir": ir, "q": other})
    assert ir.train.arrays["image_id"].tolist() == [10, 11, 12]  # the row showing test image 15 goes
    cand = ir.train.arrays["candidate_index"]
    assert cand.tolist() == [[1, -1, 2], [0, -1, -1], [-1, 0, 1]]  # candidates 15, 16, 17 masked; rows stay
    assert (ir.train.arrays["candidate_id"] == np.where(cand < 0, -1, 10 + cand)).all()
    assert report["tasks"]["ir"]["train"]["candidates_masked"] == 4
    assert ir.meta["clean_split"]["train"]["candidates_masked"] == 4
    assert other.train.arrays["image_id"].tolist() == [14] and "candidates_masked" not in report["tasks"]["q"]["train"]
