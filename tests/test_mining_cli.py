"""``cotrain data mine`` as a user runs it (defaults on: progress bars, TensorBoard): train a small
retrieval run, mine its hard negatives, train again drawing from the mined file; and the one-line
errors for a task that is not retrieval and for a file that belongs to other data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cotrain.cli import main
from cotrain.config import load_config
from cotrain.data.mined import read_mined
from cotrain.data.sources import build_all_task_data


def write_config(tmp_path, n_train: int = 40):
    raw = {
        "name": "mine",
        "data": {"seed": 0, "root": str(tmp_path / "data"), "clean": True},  # the clean split spans both tasks
        "tasks": [{"name": t, "batch_size": 8, "source": {"kind": "world", "name": t, "n_train": n_train, "n_val": 8,
                                                          "n_test": 40}} for t in ("coco-ir", "vqa")],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 2, "coattention": {"v_layers": 1, "t_layers": 1},
                  "encoders": {"text": {"max_len": 20, "vocab_size": 300}, "regions": {"max_regions": 12},
                               "image": {"image_size": 48, "patch_size": 8}}},
        "run": {"steps": 6, "out_dir": str(tmp_path / "run"), "eval_every": 1000, "checkpoint_every": 6, "threads": 1},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mine")
    cfg = write_config(tmp)
    assert main(["train", str(cfg)]) == 0
    return tmp, cfg


def test_mine_then_train_from_the_mined_file(run, capsys):
    tmp, cfg = run
    capsys.readouterr()
    assert main(["data", "mine", str(tmp / "run"), "--task", "coco-ir", "--candidates", "4", "--shortlist", "8"]) == 0
    out = capsys.readouterr().out
    path = tmp / "run" / "mined-coco-ir.safetensors"
    assert "mined 4 hard candidates for each of" in out and "step 6" in out and "pairs/s" in out
    assert f"train with it: tasks.coco-ir.retrieval.mined={path}" in out
    mined = read_mined(path)
    assert mined.metadata["task"] == "coco-ir" and mined.metadata["step"] == "6" and mined.per_caption == 4
    ids = np.asarray(mined.caption_image_id)
    real = mined.candidate_id >= 0
    assert real.all() and not (mined.candidate_id == ids[:, None]).any()  # never the caption's own image
    assert set(mined.candidate_id.ravel().tolist()) <= set(ids.tolist())  # only training images

    # the file replaces the data's own candidates, and a run trains from it
    over = [f"tasks.coco-ir.retrieval.mined={path}", f"run.out_dir={tmp / 'run2'}"]
    data, _ = build_all_task_data(load_config(cfg, over))
    assert data["coco-ir"].meta["clean_split"]["train"]["rows_after"] < 40  # vqa's test images left coco-ir's train
    np.testing.assert_array_equal(data["coco-ir"].train.arrays["candidate_id"], mined.candidate_id)
    assert main(["train", str(cfg), *over]) == 0
    assert (tmp / "run2" / "results.json").is_file()


def test_errors_are_one_line(run, capsys):
    tmp, cfg = run
    assert main(["data", "mine", str(tmp / "run"), "--task", "vqa"]) == 1
    err = capsys.readouterr().err
    assert "cotrain data: error: task 'vqa' has a vqa head; mining hard negatives needs a retrieval task (coco-ir)" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["data", "mine", str(tmp / "run"), "--task", "coco-ir", "--candidates", "8", "--shortlist", "4"]) == 1
    err = capsys.readouterr().err
    assert "--shortlist 4 is shorter than --candidates 8" in err and len(err.strip().splitlines()) == 1
    # a file mined on other data (another n_train) is refused when training, naming it
    path = tmp / "mined.safetensors"
    assert main(["data", "mine", str(tmp / "run"), "--task", "coco-ir", "--out", str(path), "--quiet"]) == 0
    (tmp / "other").mkdir()
    other = write_config(tmp / "other", n_train=32)
    capsys.readouterr()
    assert main(["train", str(other), f"tasks.coco-ir.retrieval.mined={path}", "run.steps=1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: mined for" in err and "but task 'coco-ir' has" in err and len(err.strip().splitlines()) == 1
