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
    assert d.inputs == ("text", "regions") and d.meta["head_type"] == "vqa" and d.meta["region_dim"] == 6
    assert sorted(d.class_names) == ["blue", "green", "red"]
    a = d.train.columns()
    assert a["regions"].shape == (2, 36, 6) and a["region_mask"].sum(1).tolist() == [5, 5]
    assert a["boxes"].max() <= 1.0 and a["text"].shape == (2, 12)
    blue_id = d.class_names.index("blue")
    assert a["label"][1, blue_id] == pytest.approx(1.0) and a["answers"][1].tolist().count(blue_id) == 9
    assert a["answers_raw"].shape == (2, 10)
    assert a["answer_type"].tolist() == ["other", "other"]  # the annotations' answer_type [N]
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


# ----------------------------------------------------------------- val / test carved from train by image
COLOURS = ["red", "blue", "green", "white"]


def vqa_train_only(tmp, n_images=60):
    """A vqa_v2 train file only: image i has 1 + i % 4 questions (so row and image fractions differ)."""
    images = list(range(1, n_images + 1))
    write_regions(tmp / "feats", images)
    qids, image_ids, answers = [], [], []
    for im in images:
        for k in range(1 + im % 4):
            qids.append(100 * im + k)
            image_ids.append(im)
            answers.append([COLOURS[(im + k) % 4]] * 10)
    return {"train": write_vqa(tmp, "train", qids, image_ids, answers)}, len(qids)


def split_images(d):
    return {s: set(getattr(d, s).arrays["image_id"].reshape(len(getattr(d, s).arrays["label"]), -1)[:, 0].tolist())
            for s in ("train", "val", "test")}


def assert_disjoint(sets):
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]


def test_vqa_v2_val_fraction_carves_val_and_test_by_image(tmp_path):
    files, n_questions = vqa_train_only(tmp_path)
    src = {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats"), "val_fraction": 0.2}
    d = build_all_task_data(cfg_for(tmp_path, src))[0]["vqa"]
    sets = split_images(d)
    assert_disjoint(sets)
    assert sets["train"] | sets["val"] | sets["test"] == set(range(1, 61))
    assert (len(sets["val"]), len(sets["test"])) == (12, 6)  # 0.2 and the default test_fraction 0.1 of 60 images
    rows = {s: len(getattr(d, s).arrays["label"]) for s in ("train", "val", "test")}
    assert sum(rows.values()) == n_questions  # every question once, all of an image's questions in its split
    assert abs(rows["val"] / n_questions - 0.2) < 0.08 and abs(rows["test"] / n_questions - 0.1) < 0.06
    questions = [str(q) for s in ("train", "val", "test") for q in getattr(d, s).arrays["text_raw"]]
    assert len(set(questions)) == n_questions
    # the vocabulary comes from the carved train split only; val keeps its soft targets
    assert d.val.arrays["label"].shape[1] == len(d.class_names) and (d.val.arrays["answers"] >= -1).all()


def test_vqa_v2_carve_is_seeded_by_source_seed_or_data_seed(tmp_path):
    files, _ = vqa_train_only(tmp_path)
    src = {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats"), "val_fraction": 0.2}
    val = lambda cfg: split_images(build_all_task_data(cfg)[0]["vqa"])["val"]  # noqa: E731
    first = val(cfg_for(tmp_path, src))
    assert val(cfg_for(tmp_path, src)) == first  # reproducible
    other = val(cfg_for(tmp_path, {**src, "seed": 1}))
    assert other != first and len(other) == len(first)
    cfg = cfg_for(tmp_path, src)
    cfg.data.seed = 1
    assert val(cfg) == other  # source.seed, else data.seed


def test_split_file_wins_and_a_fraction_for_it_is_an_error(tmp_path):
    files, _ = vqa_train_only(tmp_path)
    write_regions(tmp_path / "feats", [900])
    files["val"] = write_vqa(tmp_path, "val", [90001], [900], [["red"] * 10])
    src = {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")}
    d = build_all_task_data(cfg_for(tmp_path, src))[0]["vqa"]
    sets = split_images(d)
    assert sets["val"] == {900} and len(sets["test"]) == 6  # val from its file, test carved (default 0.1)
    assert_disjoint(sets)
    with pytest.raises(DataError, match=r"val_fraction = 0.3 .*source.files.val"):
        build_all_task_data(cfg_for(tmp_path, {**src, "val_fraction": 0.3}))


def karpathy(tmp, n_images=40, splits=("train", "restval")):
    images = [{"filepath": "train2014", "filename": f"COCO_train2014_{i:012d}.jpg", "imgid": i, "cocoid": i,
               "split": splits[i % len(splits)],
               "sentences": [{"raw": f"picture {i} caption {k}", "imgid": i, "sentid": 5 * i + k} for k in range(5)]}
              for i in range(1, n_images + 1)]
    (tmp / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": images}))
    write_regions(tmp / "feats", range(1, n_images + 1))
    return str(tmp / "dataset_coco.json")


def test_coco_captions_carve_retrieval_pools_by_image(tmp_path):
    src = {"kind": "coco_captions", "files": {"all": {"karpathy": karpathy(tmp_path)}},
           "regions": str(tmp_path / "feats"), "val_fraction": 0.25, "test_fraction": 0.25}
    d = build_all_task_data(cfg_for(tmp_path, src))[0]["vqa"]
    sets = split_images(d)
    assert_disjoint(sets)
    assert (len(sets["val"]), len(sets["test"]), len(sets["train"])) == (10, 10, 20)
    for s in ("val", "test"):  # one caption per row, all 5 captions of each pool image
        ids = getattr(d, s).arrays["image_id"]
        assert ids.shape == (50,) and np.bincount(ids)[sorted(sets[s])].tolist() == [5] * 10
        captions = [str(c) for c in getattr(d, s).arrays["text_raw"]]
        assert all(c.split()[1] == str(i) for c, i in zip(captions, ids))  # "picture <i> caption <k>"
    assert set(d.train.arrays["image_id"].reshape(-1).tolist()) == sets["train"]  # negatives from train images only
    with pytest.raises(DataError, match=r"test_fraction = 0.25 .*source.files.all"):
        tmp2 = tmp_path / "given"
        tmp2.mkdir()
        given = {**src, "files": {"all": {"karpathy": karpathy(tmp2, splits=("train", "test", "restval"))}},
                 "regions": str(tmp2 / "feats"), "val_fraction": 0.1}
        build_all_task_data(cfg_for(tmp_path, given))


def test_coco_captions_under_a_pretrain_head_give_pretraining_rows(tmp_path):
    from cotrain.data.formats.vl.source import data_head_type
    from cotrain.info import num_classes_of

    src = {"kind": "coco_captions", "files": {"all": {"karpathy": karpathy(tmp_path, n_images=20)}},
           "regions": str(tmp_path / "feats"), "val_fraction": 0.25, "test_fraction": 0.25}
    plain = cfg_for(tmp_path, src)
    raw = plain.model_dump()
    raw["model"]["heads"] = {"vqa": {"type": "pretrain"}}
    cfg = config_from_dict(raw)
    assert data_head_type(plain.tasks[0], plain) == "retrieval" and data_head_type(cfg.tasks[0], cfg) == "pretrain"
    assert num_classes_of(cfg.tasks[0], cfg) == 1
    d = build_all_task_data(cfg)[0]["vqa"]
    assert d.meta["head_type"] == "pretrain" and d.class_names == ["caption"]
    for s in ("train", "val", "test"):  # one row per caption with its own image, all 5 captions of an image
        split = getattr(d, s)
        ids = split.arrays["image_id"]
        assert ids.ndim == 1 and "label" not in split.arrays and split.column("regions").shape == (len(ids), 36, 6)
        assert sorted(np.bincount(ids)[np.unique(ids)].tolist()) == [5] * len(np.unique(ids))
    assert len(d.train.arrays["image_id"]) == 50 and d.meta["skipped"] == {"train": {}, "val": {}, "test": {}}


def test_nlvr2_train_file_carves_by_image_set(tmp_path):
    rows = []
    for set_id in range(30):
        for pair in range(2):  # two pairs of one image set, two statements each
            for sent in range(2):
                rows.append({"identifier": f"train-{set_id}-{pair}-{sent}", "sentence": f"set {set_id} pair {pair}",
                             "label": "True" if (set_id + sent) % 2 else "False"})
    (tmp_path / "train.json").write_text("\n".join(json.dumps(r) for r in rows))
    write_regions(tmp_path / "feats", [f"train-{s}-{p}-img{k}" for s in range(30) for p in range(2) for k in range(2)])
    src = {"kind": "nlvr2", "files": {"train": {"statements": str(tmp_path / "train.json")}},
           "regions": str(tmp_path / "feats"), "val_fraction": 0.2, "test_fraction": 0.1}
    d = build_all_task_data(cfg_for(tmp_path, src))[0]["vqa"]
    sets = {}
    for s in ("train", "val", "test"):
        a = getattr(d, s).arrays
        assert a["image_id"].shape == (len(a["label"]), 2)
        sets[s] = {str(t).split()[1] for t in a["text_raw"]}  # "set <id> pair <p>": the row's image set
        assert len(a["label"]) == 4 * len(sets[s])  # both pairs and all statements of a set stay together
    assert_disjoint(sets)
    assert (len(sets["val"]), len(sets["test"])) == (6, 3)
    images = {s: set(getattr(d, s).arrays["image_id"].reshape(-1).tolist()) for s in sets}
    assert_disjoint(images)


def _gqa(tmp, images):
    doc = {f"{im}-{k}": {"imageId": im, "question": f"is {im} thing {k} red?", "answer": "yes" if k % 2 else "no"}
           for im in images for k in range(2)}
    (tmp / "gqa_train.json").write_text(json.dumps(doc))
    return {"train": {"questions": str(tmp / "gqa_train.json")}}


def _vg_qa(tmp, images):
    doc = [{"id": im, "qas": [{"qa_id": 10 * im + k, "image_id": im, "question": f"what is {im} thing {k}?",
                               "answer": "cat"} for k in range(2)]} for im in images]
    (tmp / "question_answers.json").write_text(json.dumps(doc))
    return {"all": {"qa": str(tmp / "question_answers.json")}}


def _snli_ve(tmp, images):
    rows = [{"Flickr30K_ID": str(im), "pairID": f"{im}.jpg#{k}r1n", "sentence2": f"image {im} hypothesis {k}",
             "gold_label": ["entailment", "neutral", "contradiction"][k]} for im in images for k in range(3)]
    (tmp / "snli_ve_train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return {"train": {"pairs": str(tmp / "snli_ve_train.jsonl")}}


@pytest.mark.parametrize("kind, write, key", [
    ("gqa", _gqa, lambda i: f"n{i}"), ("vg_qa", _vg_qa, lambda i: i), ("snli_ve", _snli_ve, lambda i: 1000 + i),
])
def test_other_kinds_carve_val_and_test_by_image(tmp_path, kind, write, key):
    images = [key(i) for i in range(40)]
    write_regions(tmp_path / "feats", images)
    src = {"kind": kind, "files": write(tmp_path, images), "regions": str(tmp_path / "feats"),
           "val_fraction": 0.25, "test_fraction": 0.125}
    d = build_all_task_data(cfg_for(tmp_path, src))[0]["vqa"]
    sets = split_images(d)
    assert_disjoint(sets)
    assert (len(sets["train"]), len(sets["val"]), len(sets["test"])) == (25, 10, 5)
    per_image = len(d.train.arrays["label"]) // 25
    assert all(len(getattr(d, s).arrays["label"]) == per_image * len(sets[s]) for s in sets)


def test_train_must_be_given_and_all_excludes_per_split_files(tmp_path):
    write_regions(tmp_path / "feats", [1])
    files = {"val": write_vqa(tmp_path, "val", [1], [1], [["red"] * 10])}
    with pytest.raises(DataError, match="no questions file with train records .* carved from train"):
        build_all_task_data(cfg_for(tmp_path, {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")}))
    files = {"all": files["val"], "train": files["val"]}
    with pytest.raises(DataError, match=r"questions both under all and under \['train'\]"):
        build_all_task_data(cfg_for(tmp_path, {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")}))
    one = {"train": write_vqa(tmp_path, "train", [1, 2], [1, 1], [["red"] * 10] * 2)}
    with pytest.raises(DataError, match="val_fraction = 0.1 of its 1 train image group"):
        build_all_task_data(cfg_for(tmp_path, {"kind": "vqa_v2", "files": one, "regions": str(tmp_path / "feats")}))


def test_large_visual_stores_are_cached_under_the_data_root_and_reused(tmp_path, monkeypatch):
    from cotrain.data.formats.vl import source as vl_source

    monkeypatch.setattr(vl_source, "STORE_MIN_BYTES", 0)  # every store counts as large
    write_regions(tmp_path / "feats", [1, 2, 3, 4])
    files = {s: write_vqa(tmp_path, s, [10 + i, 20 + i], [1 + i, 1 + i], [["red"] * 10] * 2)
             for i, s in enumerate(("train", "val", "test"))}
    cfg = cfg_for(tmp_path, {"kind": "vqa_v2", "files": files, "regions": str(tmp_path / "feats")})
    cfg.data.root = str(tmp_path / "root")
    d = build_all_task_data(cfg)[0]["vqa"]
    stores = {s: getattr(d, s).stores["visual"] for s in ("train", "val", "test")}
    assert all(st.mapped and st.folder.parent == tmp_path / "root" / "stores" for st in stores.values())
    assert len(stores["train"]) == 1 and len(d.train) == 2  # two questions, one stored image
    again = build_all_task_data(cfg)[0]["vqa"]
    assert again.train.stores["visual"].folder == stores["train"].folder  # found, not rebuilt
    assert len(list((tmp_path / "root" / "stores").iterdir())) == 3
    np.testing.assert_array_equal(again.val.column("regions"), d.val.column("regions"))
