"""`cotrain train --unit` as a user runs it (progress bar on), then eval, predict (detection with
--draw, a V&L and a text task) and info on the ONE encoder-decoder model it trains."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cotrain.cli import main
from cotrain.config import default_config_path, load_raw

TASKS = [t["name"] for t in load_raw(default_config_path("unit"))["tasks"]]


def small(tmp) -> list[str]:
    sizes = [f"tasks.{t}.source.{k}={n}" for t in TASKS for k, n in (("n_train", 48), ("n_val", 12), ("n_test", 16))]
    return [*sizes, "run.steps=30", "run.checkpoint_every=30", "run.log_every=10", f"run.out_dir={tmp / 'run'}",
            f"data.root={tmp / 'data'}", "run.threads=1", "model.dim=32", "model.num_heads=2",
            "optim.warmup_steps=5"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unit")
    rc = main(["train", "--unit", *small(tmp)])
    return tmp, rc


def test_one_encoder_decoder_trains_detection_vl_and_text_with_the_default_progress_bar(trained):
    tmp, rc = trained
    assert rc == 0
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert list(results) == TASKS
    assert results["detect"]["metric"] == "detection" and "AP50" in results["detect"]["details"]
    state = json.loads(next((tmp / "run" / "checkpoints").glob("step_*/state.json")).read_text())
    kinds = {t["name"]: (tuple(t["inputs"]), t["head_kind"], t["queries"]) for t in state["tasks"]}
    assert kinds["detect"] == (("image",), "detect", 12)
    assert kinds["vqa"] == (("image", "text"), "vqa", 4) and kinds["nli"] == (("text",), "classify", 4)
    assert [t["attribute_names"] for t in state["tasks"] if t["name"] == "detect"][0][:2] is not None


def test_eval_reproduces_the_training_results(trained, capsys):
    tmp, _ = trained
    assert main(["eval", str(tmp / "run"), "--json", str(tmp / "eval.json")]) == 0
    again, first = json.loads((tmp / "eval.json").read_text()), json.loads((tmp / "run" / "results.json").read_text())
    for t in TASKS:
        assert again[t]["value"] == pytest.approx(first[t]["value"], abs=1e-6), t
    assert "| detect | image | detection |" in capsys.readouterr().out


def test_predict_detection_draws_and_other_families_answer(trained, tmp_path, capsys):
    tmp, _ = trained
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    out = tmp_path / "boxes.png"
    assert main(["predict", str(tmp / "run"), "--task", "detect", str(tmp_path / "scene.png"), "--draw", str(out),
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["objects"] and all(len(o["box"]) == 4 and "attribute" in o for o in row["objects"])
    assert Image.open(out).size[0] >= 256
    assert main(["predict", str(tmp / "run"), "--task", "vqa", "--image", str(tmp_path / "scene.png"),
                 "--text", "how many circles are there?"]) == 0
    assert main(["predict", str(tmp / "run"), "--task", "qnli", "what colour is the disc? [SEP] the disc is red"]) == 0
    text = capsys.readouterr().out
    assert "how many circles" in text and "entailment" in text


def test_info_describes_the_unit_recipe(capsys):
    assert main(["info", "--unit"]) == 0
    out = capsys.readouterr().out
    assert "detect" in out and "encoder_decoder" in out
