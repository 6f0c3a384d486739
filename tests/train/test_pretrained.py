"""Pretrained → downstream loading (``cotrain.train.pretrained``) and ``cotrain finetune CKPT --config``."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from cotrain.cli import main
from cotrain.config import ModelConfig, config_from_dict
from cotrain.data.sources import build_all_task_data
from cotrain.model import build_model
from cotrain.tasks import TaskSpec
from cotrain.train.checkpoint import CheckpointError
from cotrain.train.pretrained import format_report, load_pretrained
from cotrain.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

ENC = {"text": {"max_len": 12}, "regions": {"max_regions": 6}, "image": {"image_size": 16, "patch_size": 8}}


def model(tasks, seed=0, **kw):
    torch.manual_seed(seed)
    base = dict(trunk="coattention", dim=32, num_heads=4, encoders=ENC, task_tokens="dataset",
                coattention={"v_layers": 1, "t_layers": 2})
    base.update(kw)
    return build_model(ModelConfig(**base), tasks, vocab_size=50)


def vl(name, kind, classes=2, inputs=("regions", "text")):
    metric = {"vqa": "vqa", "retrieval": "recall"}.get(kind, "top1")
    return TaskSpec(name, tuple(inputs), name, kind, classes, metric, region_dim=8 if "regions" in inputs else None)


def test_encoders_and_trunk_load_heads_and_task_tokens_are_new():
    src = model([vl("pre", "vqa", 5)], seed=0)
    dst = model([vl("nlvr", "nlvr"), vl("ir", "retrieval", 1)], seed=1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    report = load_pretrained(dst, src.state_dict(), "ckpt/model.safetensors", {"hook.cvlp.queue": torch.zeros(3)})
    own, theirs = dst.state_dict(), src.state_dict()
    assert report["loaded"] and all(n.startswith(("encoders.", "trunk.")) for n in report["loaded"])
    for n in report["loaded"]:
        torch.testing.assert_close(own[n], theirs[n])
    assert any(n.startswith("trunk.co_layers") for n in report["loaded"])
    assert any(n.startswith("encoders.regions") for n in report["loaded"])
    # new: the downstream heads and task tokens keep their fresh values
    assert {n.split(".")[1] for n in report["new"] if n.startswith("heads.")} == {"nlvr", "ir"}
    assert any("task_tokens" in n for n in report["new"])
    for n in report["new"]:
        torch.testing.assert_close(own[n], before[n])
    # ignored: the pretraining head, its task tokens and the hook's tensors
    assert any(n.startswith("heads.pre.") for n in report["ignored"])
    assert "optimizer.safetensors:hook.cvlp.queue" in report["ignored"]
    assert len(report["loaded"]) + len(report["new"]) == len(own)
    text = format_report(report)
    assert "loaded" in text and "heads.nlvr" in text and "trunk" in text


def test_an_encoder_the_checkpoint_lacks_is_new_one_it_has_and_the_model_does_not_is_ignored():
    src = model([vl("pre", "vqa", 5)], seed=0)  # regions + text
    dst = model([vl("pix", "vqa", 5, inputs=("image", "text"))], seed=1)  # image + text
    report = load_pretrained(dst, src.state_dict(), "m.safetensors")
    assert any(n.startswith("encoders.image.") for n in report["new"])
    assert any(n.startswith("encoders.regions.") for n in report["ignored"])
    assert any(n.startswith("encoders.text.") for n in report["loaded"])


@pytest.mark.parametrize("change, expect", [
    ({"dim": 64}, r"has shape \[.*\] in the checkpoint but \[.*\] in the model"),
    ({"coattention": {"v_layers": 1, "t_layers": 3}}, r"trunk\.text_only\.1\..* is in the model but not in the checkpoint"),
    ({"coattention": {"v_layers": 2, "t_layers": 2}}, r"is in the (model|checkpoint) but not in the"),
])
def test_a_trunk_that_does_not_match_is_refused_naming_the_parameters(change, expect):
    src = model([vl("pre", "vqa", 5)])
    dst = model([vl("nlvr", "nlvr")], **change)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError, match=expect) as err:
        load_pretrained(dst, src.state_dict(), "run/ckpt/model.safetensors")
    assert "run/ckpt/model.safetensors" in str(err.value) and "model section" in str(err.value)
    for k, v in dst.state_dict().items():  # nothing was loaded
        torch.testing.assert_close(v, before[k])


def raw(tmp_path, tasks, out, steps=4):
    return {
        "name": "tiny",
        "data": {"seed": 0, "root": str(tmp_path / "data")},
        "tasks": [{"name": t, "batch_size": 8, "source": {"kind": "world", "name": t, "n_train": 32, "n_val": 8, "n_test": 8}}
                  for t in tasks],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 2, "task_tokens": "dataset",
                  "coattention": {"v_layers": 1, "t_layers": 2},
                  "encoders": {"text": {"max_len": 24, "vocab_size": 300}, "regions": {"max_regions": 12}}},
        "run": {"steps": steps, "out_dir": str(out), "eval_every": 1000, "checkpoint_every": steps, "threads": 1},
    }


def test_cli_finetune_with_a_downstream_config_as_a_user_runs_it(tmp_path, capsys):
    """``cotrain finetune RUN --config down.yaml`` with the defaults on (progress bar, TensorBoard):
    the report, the table, pretrained.json; the downstream text uses the checkpoint's vocabulary."""
    pre_cfg = config_from_dict(raw(tmp_path, ["vqa"], tmp_path / "pre"))
    data, tok = build_all_task_data(pre_cfg)
    pre = Trainer(pre_cfg, data=data, tokenizer=tok)
    pre.fit()
    down = tmp_path / "down.yaml"
    down.write_text(yaml.safe_dump(raw(tmp_path, ["nlvr"], tmp_path / "down")))
    assert main(["finetune", str(tmp_path / "pre"), "--config", str(down)]) == 0
    out = capsys.readouterr().out
    assert "from the pretrained encoders and trunk" in out and "loaded" in out and "new" in out and "ignored" in out
    assert "| nlvr |" in out
    saved = json.loads((tmp_path / "down" / "pretrained.json").read_text())
    assert saved["loaded"] and any(n.startswith("heads.vqa") for n in saved["ignored"])
    assert (tmp_path / "down" / "vocab.txt").read_text() == (tmp_path / "pre" / "vocab.txt").read_text()
    assert (tmp_path / "down" / "results.json").is_file()


def test_cli_finetune_refuses_a_mismatching_trunk_and_both_modes(tmp_path, capsys):
    pre_cfg = config_from_dict(raw(tmp_path, ["vqa"], tmp_path / "pre", steps=1))
    data, tok = build_all_task_data(pre_cfg)
    Trainer(pre_cfg, data=data, tokenizer=tok).fit()
    bad = raw(tmp_path, ["nlvr"], tmp_path / "down")
    bad["model"]["dim"] = 64
    down = tmp_path / "down.yaml"
    down.write_text(yaml.safe_dump(bad))
    assert main(["finetune", str(tmp_path / "pre"), "--config", str(down), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "do not match the pretrained ones" in err and "in the checkpoint but" in err
    assert main(["finetune", str(tmp_path / "pre"), "--config", str(down), "--task", "vqa"]) == 1
    assert "not both" in capsys.readouterr().err
