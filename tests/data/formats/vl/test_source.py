"""A real-format V&L source in a config (`source.kind: vqa_v2`, `nlvr2`) → TaskData per the contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cotrain.config import ConfigError, config_from_dict
from cotrain.data.errors import DataError
from cotrain.data.sources import build_all_task_data


def write_regions(folder, ids, r=5, f=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in ids:
        boxes = np.array([[0, 0, 50, 40]] * r, dtype=np.float32) + np.arange(r)[:, None]
        np.savez(folder / f"{i}.npz", features=rng.random((r, f), dtype=np.float32), boxes=boxes, image_w=100, image_h=80)


def write_vqa(tmp, split, qids, image_ids, answers):
    q = {"data_subtype": f"{split}2014", "questions": [
        {"question_id": qi, "image_id": im, "question": f"what colour is thing {qi}?"} for qi, im in zip(qids, image_ids)]}
    a = {"annotations": [
        {"question_id": qi, "image_id": im, "answers": [{"answer": ans, "answer_confidence": "yes", "answer_id": k + 1}
                                                         for k, ans in enumerate(ans10)],
         "multiple_choice_answer": ans10[0], "answer_type": "other", "question_type": "what"}
        for qi, im, ans10 in zip(qids, image_ids, answers)]}
    (tmp / f"q_{split}.json").write_text(json.dumps(q))
    (tmp / f"a_{split}.json").write_text(json.dumps(a))
    return {"questions": str(tmp / f"q_{split}.json"), "annotations": str(tmp / f"a_{split}.json")}


def cfg_for(tmp, source):
    return config_from_dict({
        "tasks": [{"name": "vqa", "source": source}],
        "model": {"trunk": "coattention", "dim": 16, "num_heads": 2, "encoders": {"text": {"max_len": 12, "vocab_size": 64}}},
        "run": {"out_dir": str(tmp / "run")},
    })


def test_vqa_v2_source_builds_contract_arrays(tmp_path):
    write_regions(tmp_path / "feats", [1, 2, 3, 4])
    red, blue = ["red"] * 10, ["blue"] * 7 + ["Blue"] * 2 + ["green"]
    files = {
        "train": write_vqa(tmp_path, "train", [11, 12], [1, 2], [red, blue]),
        "val": write_vqa(tmp_path, "val", [21], [3], [blue]),
        "test": write_vqa(tmp_path, "test", [31], [4], [["purple"] * 10]),  # outside the train vocabulary
    }
    cfg = cfg_for(tmp_path, {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")})
    data, tok = build_all_task_data(cfg)
    d = data["vqa"]
    assert d.modality == "vl" and d.meta["head_type"] == "vqa" and d.meta["region_dim"] == 6
    assert sorted(d.class_names) == ["blue", "green", "red"]
    a = d.train.arrays
    assert a["regions"].shape == (2, 36, 6) and a["region_mask"].sum(1).tolist() == [5, 5]
    assert a["boxes"].max() <= 1.0 and a["text"].shape == (2, 12)
    blue_id = d.class_names.index("blue")
    assert a["label"][1, blue_id] == pytest.approx(1.0) and a["answers"][1].tolist().count(blue_id) == 9
    assert a["answers_raw"].shape == (2, 10)
    assert (d.test.arrays["answers"] == -1).all()  # "purple" is counted, not a crash


def test_vl_source_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="needs `files`"):
        cfg_for(tmp_path, {"kind": "vqa_v2", "regions": "x"})
    with pytest.raises(ConfigError, match="`regions` .* or `images`"):
        cfg_for(tmp_path, {"kind": "vqa_v2", "files": {"train": {"questions": "q.json"}}})
    cfg = cfg_for(tmp_path, {"kind": "vqa_v2", "files": {"train": {"questionz": "q.json"}}, "regions": str(tmp_path)})
    with pytest.raises(DataError, match="roles \\['questionz'\\]"):
        build_all_task_data(cfg)
    write_regions(tmp_path / "feats", [1])
    files = {s: write_vqa(tmp_path, s, [1], [9], [["red"] * 10]) for s in ("train", "val", "test")}
    cfg = cfg_for(tmp_path, {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")})
    with pytest.raises(DataError, match="9"):  # the missing image id is named
        build_all_task_data(cfg)
