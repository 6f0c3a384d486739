"""The vision-and-language pipeline end to end on tiny world data: config → data (clean split,
tokenisation) → co-attention model → trainer with DSG → V&L metrics → checkpoint → fine-tuning →
inference from the API and the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from cotrain.api import load
from cotrain.cli import main
from cotrain.config import config_from_dict, dump_config
from cotrain.data.sources import build_all_task_data
from cotrain.train.finetune import finetune, transfer_weights
from cotrain.train.trainer import Trainer

TASKS = {"vqa": "G1", "coco-ir": "G2", "refcoco": "G3", "nlvr": "G4"}


def vl_raw(tmp_path, **over):
    raw = {
        "name": "vl-tiny",
        "data": {"seed": 0, "root": str(tmp_path / "data"), "clean": True},
        "tasks": [{"name": t, "group": g, "batch_size": 8,
                   "source": {"kind": "world", "name": t, "n_train": 48, "n_val": 12, "n_test": 12}}
                  for t, g in TASKS.items()],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 2,
                  "task_tokens": "dataset", "coattention": {"v_layers": 1, "t_layers": 2},
                  "encoders": {"text": {"max_len": 24, "vocab_size": 300}, "regions": {"max_regions": 12},
                               "image": {"image_size": 48, "patch_size": 8}}},
        "schedule": {"kind": "alternating", "dsg": {"enabled": True, "delta": 2}},
        "optim": {"lr": 2e-3, "warmup_eta": 0.1, "task_lr_mode": "loss_scale"},
        "run": {"steps": 24, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 1000, "checkpoint_every": 24, "threads": 1},
    }
    for k, v in over.items():
        raw[k] = {**raw[k], **v}
    return raw


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vl")
    cfg = config_from_dict(vl_raw(tmp))
    data, tok = build_all_task_data(cfg)
    trainer = Trainer(cfg, data=data, tokenizer=tok)
    results = trainer.fit()
    return tmp, cfg, data, trainer, results


def test_data_is_tokenised_cleaned_and_typed(trained):
    _, cfg, data, _, _ = trained
    for name, d in data.items():
        assert d.inputs == ("image", "text", "regions") and d.meta["head_type"]
        assert d.train.arrays["text"].dtype == np.int64 and d.train.arrays["text"].shape[1] == 24
        assert (d.train.arrays["text"][:, 0] > 0).all()  # every text has its first token
    # the clean split: no train/val image of any task is a test image of any task
    test_ids = set(np.concatenate([d.test.arrays["image_id"].ravel() for d in data.values()]).tolist())
    for d in data.values():
        for s in ("train", "val"):
            assert not set(d.split(s).arrays["image_id"].ravel().tolist()) & test_ids
    assert data["vqa"].meta["clean_split"]["train"]["rows_before"] == 48
    # ... nor a hard candidate of a retrieval caption: those are masked (-1), the row stays
    cands = data["coco-ir"].train.arrays["candidate_id"]
    assert not set(cands.ravel().tolist()) & test_ids and (cands >= 0).sum(axis=1).min() >= 3


def test_training_reports_each_head_metric(trained):
    _, _, data, trainer, results = trained
    assert {t: r["metric"] for t, r in results.items()} == {"vqa": "vqa", "coco-ir": "recall", "refcoco": "refexp",
                                                            "nlvr": "top1"}
    assert set(results["coco-ir"]["details"]) == {f"{d}_r{k}" for d in ("c2i", "i2c") for k in (1, 5, 10)}
    assert set(results["vqa"]["details"]) == {"yes/no", "number", "other"}  # accuracy per answer type
    assert all(0.0 <= v <= 1.0 for v in results["vqa"]["details"].values())
    assert results["coco-ir"]["chance"] == pytest.approx(1 / len(np.unique(data["coco-ir"].test.arrays["image_id"])))
    for r in results.values():
        assert 0.0 <= r["value"] <= 1.0 and r["n"] == 12
    assert trainer.model.parameter_counts()["task_tokens"] == 4 * 32  # one token per dataset
    assert trainer.warmup_steps == 1  # eta 0.1 x N = 24 / 4 tasks = 6 -> 0.6 -> 1


def test_results_carry_the_pool_and_the_evaluation_time(trained):
    tmp, _, data, trainer, results = trained
    images = len(np.unique(data["coco-ir"].test.arrays["image_id"]))
    r = results["coco-ir"]
    assert r["pool"] == {"images": images, "captions": 12} and r["scoring"] == "full trunk on every pair"
    assert r["pairs"] == images * 12 and r["chance_details"]["c2i_r1"] == pytest.approx(1 / images, abs=1e-5)
    saved = json.loads((tmp / "run" / "results.json").read_text())
    assert all(saved[t]["eval_time_s"] == results[t]["eval_time_s"] >= 0 for t in TASKS)
    test = [r for r in (json.loads(x) for x in (tmp / "run" / "log.jsonl").read_text().splitlines())
            if r["kind"] == "eval" and r["split"] == "test"]
    assert test[-1]["coco-ir/pool_images"] == images and test[-1]["coco-ir/pool_captions"] == 12
    assert trainer.history[-1]["coco-ir/pool_images"] == images


def test_eval_cli_matches_training_results(trained, capsys):
    tmp, _, _, trainer, results = trained
    out = tmp / "eval.json"
    assert main(["eval", str(trainer.last_checkpoint), "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    for t in results:
        assert again[t]["value"] == pytest.approx(results[t]["value"], abs=1e-6)


def test_finetune_starts_from_the_multitask_weights(trained):
    tmp, _, data, trainer, _ = trained
    ft, res, transfer = finetune(trainer.last_checkpoint, "refcoco", steps=2, out_dir=str(tmp / "ft"),
                                 overrides=["run.threads=1"])
    assert list(res) == ["refcoco"] and transfer["skipped"] == 0
    assert ft.model.trunk.task_tokens.num == 1
    # before training the task token row was copied from the multi-task model's refcoco row
    fresh = Trainer(ft.cfg, data={"refcoco": data["refcoco"]}, tokenizer=ft.tokenizer)
    transfer_fresh = transfer_weights(fresh.model, trainer.model, "refcoco")
    assert transfer_fresh["copied"] > 0
    src = trainer.model.trunk.task_tokens.embed.weight[trainer.model.task_token_id("refcoco")]
    torch.testing.assert_close(fresh.model.trunk.task_tokens.embed.weight[0], src)


def _example(data, task, row, key="test"):
    v = data[task].split(key).visual([row])
    return {"regions": v["regions"][0], "boxes": v["boxes"][0], "region_mask": v["region_mask"][0]}


def test_api_answers_points_verifies_and_ranks(trained):
    _, _, data, trainer, _ = trained
    pred = load(trainer.last_checkpoint)
    q = str(data["vqa"].test.arrays["text_raw"][0])
    ans = pred.predict("vqa", {"image": _example(data, "vqa", 0), "text": q})[0]
    assert ans["label"] in data["vqa"].class_names and 0 <= ans["score"] <= 1
    pt = pred.predict("refcoco", {"image": _example(data, "refcoco", 0), "text": "the red circle"})[0]
    mask = data["refcoco"].test.column("region_mask", [0])[0]
    assert mask[pt["region"]] and len(pt["box"]) == 4
    a = data["nlvr"].test.columns([0])
    views = [{"regions": a["regions"][0, k], "boxes": a["boxes"][0, k], "region_mask": a["region_mask"][0, k]} for k in (0, 1)]
    v = pred.predict("nlvr", {"images": views, "text": str(a["text_raw"][0])})[0]
    assert v["label"] in ("false", "true") and sum(v["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    imgs = [_example(data, "coco-ir", r) for r in range(3)]
    rk = pred.predict("coco-ir", {"images": imgs, "text": str(data["coco-ir"].test.arrays["text_raw"][0])})[0]
    assert sorted(rk["ranking"]) == [0, 1, 2]
    assert rk["scores"][rk["ranking"][0]] == max(rk["scores"])
    with pytest.raises(ValueError, match="exactly 2 images"):
        pred.predict("nlvr", {"images": views[:1], "text": "x"})


def test_cli_predict_reads_region_files(trained, tmp_path, capsys):
    _, _, data, trainer, _ = trained
    ex = _example(data, "refcoco", 1)
    n = int(ex["region_mask"].sum())
    np.savez(tmp_path / "scene1.npz", features=ex["regions"][:n], boxes=ex["boxes"][:n] * 48, image_w=48, image_h=48)
    assert main(["predict", str(trainer.last_checkpoint), "--task", "refcoco", "--text", "the blue square",
                 "--image", str(tmp_path / "scene1.npz"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= row["region"] < n
    np.testing.assert_allclose(row["box"], ex["boxes"][row["region"]], atol=1e-4)
    assert main(["predict", str(trainer.last_checkpoint), "--task", "vqa", "--text", "what colour?"]) == 1
    assert "give --text and --image" in capsys.readouterr().err


def test_cli_data_clean_prints_what_each_task_lost(tmp_path, capsys):
    cfg_file = tmp_path / "vl.yaml"
    cfg_file.write_text(dump_config(config_from_dict(vl_raw(tmp_path))))
    assert main(["data", "clean", str(cfg_file), "--quiet", "--json", str(tmp_path / "clean.json")]) == 0
    out = capsys.readouterr().out
    assert "| vqa |" in out and "fewer" in out
    report = json.loads((tmp_path / "clean.json").read_text())
    assert report["rows_after"] <= report["rows_before"]


def test_grounding_analysis_pairs_questions_and_expressions_on_the_same_object(trained):
    from cotrain.train.grounding import grounding_analysis

    _, _, data, trainer, _ = trained
    g = grounding_analysis(trainer.model, data, refexp_tasks=("refcoco",))
    q, r = data["vqa"].test.arrays, data["refcoco"].test.arrays
    same_scene = sum(int(a == b) for a in q["image_id"][q["about_object"] >= 0] for b in r["image_id"])
    same_object = sum(int(a == b and o == p) for a, o in zip(q["image_id"], q["about_object"]) if o >= 0
                      for b, p in zip(r["image_id"], r["target_object"]))
    assert g["tasks"] == ["refcoco"]
    assert g.get("pairs", 0) == same_scene and g.get("weighted_pairs", 0) == same_object
    if same_object:
        assert 0.0 <= g["consistency"] <= g["question_accuracy"] + 1e-9


def test_info_describes_a_vl_config(capsys):
    assert main(["info", "--vl"]) == 0
    out = capsys.readouterr().out
    assert "coattention trunk" in out and "task tokens dataset" in out and "Dynamic Stop-and-Go" in out
    assert "| " not in out and "refcoco+" in out and "12 single-task models" in out


def test_cli_train_with_dsg_and_the_default_progress_bar(tmp_path, capsys):
    # `cotrain train --vl`'s defaults: DSG on and the progress bar on; a task DSG stops must not end the run
    raw = vl_raw(tmp_path, schedule={"dsg": {"enabled": True, "delta": 3, "converge_tol": 10.0, "relative": False,
                                             "converge_epochs": 1, "diverge_tol": 10.0}},
                 run={"steps": 64, "checkpoint_every": 64})
    del raw["run"]["progress"]
    cfg_file = tmp_path / "vl.yaml"
    cfg_file.write_text(dump_config(config_from_dict(raw)))
    assert main(["train", str(cfg_file)]) == 0
    captured = capsys.readouterr()
    assert "64/64" in captured.err and "tasks beat chance" in captured.out
    assert re.search(r"coco-ir test pool \d+x12: .*pair/s", captured.err)  # the pool's own progress bar
    assert "s of it); test evaluation " in captured.out  # training time apart from the test evaluation's
    lines = captured.out.splitlines()
    pool = next(i for i, line in enumerate(lines) if re.match(r"coco-ir retrieval, pool \d+ images x 12 captions; full", line))
    assert lines[pool + 1].startswith("  caption->image R@1 ") and lines[pool + 2].startswith("  image->caption R@1 ")
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("dsg_change") == "stop" for r in log if r["kind"] == "dsg")
    val = [r for r in log if r["kind"] == "dsg" and "coco-ir/recall" in r]
    assert val and all(r["coco-ir/pool_images"] >= 1 and r["coco-ir/pool_captions"] == 12 for r in val)


def test_cli_predict_asks_every_repeated_question_and_echoes_it(trained, tmp_path, capsys):
    _, _, data, trainer, _ = trained
    ex = _example(data, "vqa", 0)
    n = int(ex["region_mask"].sum())
    np.savez(tmp_path / "scene.npz", features=ex["regions"][:n], boxes=ex["boxes"][:n] * 48, image_w=48, image_h=48)
    questions = ["how many circles are there?", "what colour is the square?", "is there a star?"]
    args = ["predict", str(trainer.last_checkpoint), "--task", "vqa", "--image", str(tmp_path / "scene.npz")]
    for q in questions:
        args += ["--text", q]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    echoed = [line.split("\t")[0] for line in lines if not line.startswith("  ")]
    assert echoed == questions  # one result per question, each under its question
    assert all(str(tmp_path / "scene.npz") in line for line in lines if not line.startswith("  "))
    assert main([*args, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == questions and all(r["label"] in data["vqa"].class_names for r in rows)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("scene.png", b"\x89PNG garbage", "a region model needs region features (.npz)"),
        ("scene.npz", b"not an npz", "scene.npz"),
        ("absent.npz", None, "image input not found"),
    ],
)
def test_cli_predict_names_a_bad_visual_input(trained, tmp_path, capsys, name, content, message):
    _, _, _, trainer, _ = trained
    if content is not None:
        (tmp_path / name).write_bytes(content)
    assert main(["predict", str(trainer.last_checkpoint), "--task", "vqa", "--text", "what?",
                 "--image", str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cotrain predict: error:") and message in err and "Traceback" not in err


def test_vl_predict_runs_a_list_in_batches(trained, monkeypatch):
    _, _, data, trainer, _ = trained
    pred = load(trainer.last_checkpoint)
    a = data["vqa"].test.arrays
    examples = [{"image": _example(data, "vqa", r), "text": str(a["text_raw"][r])} for r in range(7)]
    one_by_one = [pred.predict("vqa", ex)[0] for ex in examples]
    sizes = []
    forward = pred.model.forward
    monkeypatch.setattr(pred.model, "forward", lambda batch, task: sizes.append(len(batch["text"])) or forward(batch, task))
    batched = pred.predict("vqa", examples, batch_size=3)
    assert sizes == [3, 3, 1]
    assert [r["label"] for r in batched] == [r["label"] for r in one_by_one]
    for x, y in zip(batched, one_by_one):
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)
