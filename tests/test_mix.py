"""`cotrain train --mix` as a user runs it (progress bar on), then every command on the ONE model it
trains — image, video, audio, text and vision-and-language tasks in one network: eval (the checkpoint
round trip), predict for each family, probe, finetune, info."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cotrain.cli import main
from cotrain.config import default_config_path, load_raw

TASKS = [t["name"] for t in load_raw(default_config_path("mix"))["tasks"]]


def small(tmp) -> list[str]:
    sizes = [f"tasks.{t}.source.{k}={n}" for t in TASKS for k, n in (("n_train", 48), ("n_val", 12), ("n_test", 16))]
    return [*sizes, "run.steps=40", "run.checkpoint_every=40", "run.log_every=10", f"run.out_dir={tmp / 'run'}",
            f"data.root={tmp / 'data'}", "run.threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mix")
    rc = main(["train", "--mix", *small(tmp)])
    return tmp, rc


def test_one_network_trains_on_every_family_with_the_default_progress_bar(trained, capsys):
    tmp, rc = trained
    assert rc == 0
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert list(results) == TASKS
    state = json.loads(next((tmp / "run" / "checkpoints").glob("step_*/state.json")).read_text())
    inputs = {t["name"]: tuple(t["inputs"]) for t in state["tasks"]}
    assert set(inputs.values()) == {("image",), ("video",), ("audio",), ("text",), ("regions", "text")}
    assert {t["head_kind"] for t in state["tasks"]} == {"classify", "vqa", "refexp", "nlvr"}
    for r in results.values():
        assert 0.0 <= r["value"] <= 1.0 and r["steps"] > 0


def test_eval_of_the_checkpoint_reproduces_the_training_results(trained, capsys):
    tmp, _ = trained
    assert main(["eval", str(tmp / "run"), "--json", str(tmp / "eval.json")]) == 0
    again, first = json.loads((tmp / "eval.json").read_text()), json.loads((tmp / "run" / "results.json").read_text())
    for t in TASKS:
        assert again[t]["value"] == pytest.approx(first[t]["value"], abs=1e-6), t
    out = capsys.readouterr().out
    assert "| nli | text | top1 |" in out and "| vqa | regions+text | vqa |" in out


def _split(tmp, task, n=2):
    from cotrain.config import load_config
    from cotrain.data.sources import build_all_task_data

    cfg = load_config(default_config_path("mix"), small(tmp))
    cfg = cfg.model_copy(update={"tasks": [cfg.task(task)]})
    return build_all_task_data(cfg)[0][task].test


def _npz(path, split, row, view=None):
    b = split.take(np.array([row]))
    pick = (lambda k: b[k][0]) if view is None else (lambda k: b[k][0, view])
    mask = pick("region_mask").numpy().astype(bool)
    np.savez(path, features=pick("regions").numpy()[mask].astype(np.float32), boxes=pick("boxes").numpy()[mask] * 48,
             image_w=48, image_h=48)
    return str(path)


def test_predict_answers_for_every_family(trained, capsys):
    tmp, _ = trained
    run = str(tmp / "run")
    shapes = _split(tmp, "shapes")
    Image.fromarray(shapes.column("image", [0])[0].transpose(1, 2, 0)).save(tmp / "shape.png")
    assert main(["predict", run, "--task", "shapes", str(tmp / "shape.png"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["input"] == str(tmp / "shape.png") and 0 <= row["score"] <= 1
    assert main(["predict", run, "--task", "nli", "a red circle and a blue square [SEP] there is a red circle"]) == 0
    assert capsys.readouterr().out.split("\t")[1] in ("entailment", "neutral", "contradiction")
    vqa = _split(tmp, "vqa")
    assert main(["predict", run, "--task", "vqa", "--image", _npz(tmp / "v.npz", vqa, 0), "--text", "how many circles?",
                 "--json"]) == 0
    assert "label" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ref = _split(tmp, "refcoco")
    assert main(["predict", run, "--task", "refcoco", "--image", _npz(tmp / "r.npz", ref, 0), "--text", "the red one",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(got["box"]) == 4 and 0 <= got["region"]
    nlvr = _split(tmp, "nlvr")
    left, right = _npz(tmp / "l.npz", nlvr, 0, view=0), _npz(tmp / "rt.npz", nlvr, 0, view=1)
    assert main(["predict", run, "--task", "nlvr", "--image", left, "--image", right, "--text", "both have a star"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] in ("false", "true")


def test_probe_finetune_and_info_work_through_the_one_model(trained, capsys):
    tmp, _ = trained
    run = str(tmp / "run")
    assert main(["probe", run, "--task", "nli", "--epochs", "5", "--data-root", str(tmp / "data")]) == 0
    assert "(text, trunk frozen)" in capsys.readouterr().out
    assert main(["probe", run, "--task", "count", "--epochs", "5", "--n-train", "48", "--data-root", str(tmp / "data")]) == 0
    assert "on count (image, trunk frozen)" in capsys.readouterr().out  # a held-out world task
    assert main(["finetune", run, "--task", "refcoco", "--steps", "4", "--out", str(tmp / "ft"),
                 "--data-root", str(tmp / "data"), "run.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "| refcoco | regions+text | refexp |" in out
    assert main(["info", "--mix"]) == 0
    info = capsys.readouterr().out
    for inputs in ("image", "video", "audio", "text", "regions+text"):
        assert f" {inputs} " in info
    assert "model: shared trunk" in info and "8 single-task models" in info
