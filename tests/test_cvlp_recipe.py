"""The CVLP recipe as a user runs it: ``cotrain pretrain --cvlp`` (defaults on: progress bar,
TensorBoard), its logged contrastive statistics, exact resume of queue and key network through the
command, and ``cotrain finetune RUN --config cvlp-downstream``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cotrain.cli import main
from cotrain.train.logging import read_log

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(tmp_path, out="pre", steps=6):
    """Overrides that shrink the recipe: 8 captions x 12 regions per step -> queue of 2 steps' keys."""
    return [f"data.root={tmp_path / 'data'}", f"run.out_dir={tmp_path / out}", f"run.steps={steps}",
            "run.log_every=2", f"run.checkpoint_every={steps}", "run.threads=1",
            "tasks.captions.batch_size=8", "tasks.captions.source.n_train=64", "tasks.captions.source.n_val=16",
            "tasks.captions.source.n_test=16", "model.dim=32", "model.num_heads=2",
            "model.heads.captions.contrastive.queue_size=192", "optim.warmup_steps=2"]


def test_cotrain_pretrain_cvlp_logs_what_contrastive_users_look_at(tmp_path, capsys):
    assert main(["pretrain", "--cvlp", *tiny(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| captions |" in out and "pretrain" in out
    assert "cotrain finetune" in out and "cvlp-downstream" in out
    train = [r for r in read_log(tmp_path / "pre") if r["kind"] == "train"]
    last = train[-1]
    for key in ("mlm", "itm", "contrastive", "stat_pos_sim", "stat_neg_sim", "stat_contrastive_acc", "stat_queue_fill"):
        assert f"captions/{key}" in last, (key, sorted(last))
    fills = [r["captions/stat_queue_fill"] for r in train]
    assert fills[0] < fills[-1] <= 1.0  # the queue fills up over the first steps
    assert 0.0 <= last["captions/stat_contrastive_acc"] <= 1.0
    results = json.loads((tmp_path / "pre" / "results.json").read_text())
    assert results["captions"]["metric"] == "pretrain" and 0.0 <= results["captions"]["value"] <= 1.0
    assert any((tmp_path / "pre" / "tb").iterdir())


def test_pretraining_resumes_exactly_queue_and_key_network_included(tmp_path):
    assert main(["pretrain", "--cvlp", "--quiet", *tiny(tmp_path, "full", steps=6)]) == 0
    assert main(["pretrain", "--cvlp", "--quiet", *tiny(tmp_path, "cut", steps=6), "run.checkpoint_every=3"]) == 0
    # the interrupted run: same config, stopped at 3 (its checkpoint at step 3 is kept), resumed
    cut = tmp_path / "cut" / "checkpoints"
    ckpts = sorted(p for p in cut.iterdir() if p.is_dir())
    assert len(ckpts) == 2
    import shutil

    shutil.rmtree(ckpts[-1])  # drop step 6: resume from step 3
    assert main(["pretrain", "--cvlp", "--quiet", *tiny(tmp_path, "cut", steps=6), "run.checkpoint_every=3",
                 "--resume"]) == 0
    full_dir = sorted((tmp_path / "full" / "checkpoints").iterdir())[-1]
    cut_dir = sorted(cut.iterdir())[-1]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(full_dir / name), load_file(cut_dir / name)
        assert a.keys() == b.keys()
        hooks = [k for k in a if k.startswith("hook.cvlp.")]
        assert name == "model.safetensors" or any("queue" in k for k in hooks)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_finetune_the_pretrained_trunk_on_the_downstream_recipe(tmp_path, capsys):
    assert main(["pretrain", "--cvlp", "--quiet", *tiny(tmp_path, steps=2)]) == 0
    capsys.readouterr()
    small = [f"data.root={tmp_path / 'data'}", f"run.out_dir={tmp_path / 'down'}", "run.steps=8", "run.threads=1",
             "run.checkpoint_every=8", "model.dim=32", "model.num_heads=2", "optim.warmup_steps=2"]
    for t in ("vqa", "gqa", "nlvr", "coco-ir"):
        small += [f"tasks.{t}.batch_size=8", f"tasks.{t}.source.n_train=32", f"tasks.{t}.source.n_val=8",
                  f"tasks.{t}.source.n_test=8"]
    assert main(["finetune", str(tmp_path / "pre"), "--config", "cvlp-downstream", *small]) == 0
    out = capsys.readouterr().out
    assert "loaded" in out and "trunk" in out and "heads.captions" in out  # the pretraining head: ignored
    report = json.loads((tmp_path / "down" / "pretrained.json").read_text())
    assert any(n.startswith("trunk.") for n in report["loaded"])
    assert any(n.startswith("optimizer.safetensors:hook.cvlp.") for n in report["ignored"])
    for t in ("vqa", "gqa", "nlvr", "coco-ir"):
        assert f"| {t} |" in out


def test_pretrain_refuses_a_config_without_a_pretraining_task(tmp_path, capsys):
    assert main(["pretrain", "--demo", f"run.out_dir={tmp_path / 'x'}"]) == 1
    assert "no pretraining task" in capsys.readouterr().err


def test_a_queue_that_is_not_a_multiple_of_the_step_keys_is_refused_with_the_sizes(tmp_path, capsys):
    assert main(["pretrain", "--cvlp", "--quiet", *tiny(tmp_path), "model.heads.captions.contrastive.queue_size=100"]) == 1
    err = capsys.readouterr().err
    assert "100" in err and "8" in err and "12" in err


def test_pretrain_takes_a_caption_task_whose_head_comes_from_its_data(tmp_path, capsys):
    """No ``model.heads`` entry: the world ``captions`` data implies the pretrain head."""
    import yaml

    raw = {"name": "bare", "data": {"root": str(tmp_path / "data")},
           "tasks": [{"name": "cap", "batch_size": 8, "transforms": [{"kind": "match_pairs"}, {"kind": "mask_text"}],
                      "source": {"kind": "world", "name": "captions", "n_train": 32, "n_val": 8, "n_test": 8}}],
           "model": {"trunk": "coattention", "dim": 32, "num_heads": 2, "coattention": {"v_layers": 1, "t_layers": 2},
                     "encoders": {"regions": {"max_regions": 12}}},
           "run": {"steps": 2, "out_dir": str(tmp_path / "run"), "threads": 1}}
    cfg = tmp_path / "bare.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["pretrain", str(cfg), "--quiet"]) == 0
    assert "| cap |" in capsys.readouterr().out
