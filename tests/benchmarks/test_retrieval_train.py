"""benchmarks/retrieval_train.py: its config carries the retrieval settings, and a tiny run prints the
recall table of both scorings (no score asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
pytestmark = pytest.mark.usefixtures("one_thread")


def _module():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_retrieval_train", BENCH / "retrieval_train.py")
    mod = sys.modules.setdefault("bench_retrieval_train", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(mod)
    return mod


def test_config_has_the_chosen_retrieval_settings_and_overrides(tmp_path):
    rt = _module()
    args = argparse.Namespace(preset="small", steps=7, n_train=123, device="cpu", runs_dir=str(tmp_path),
                              loss="contrastive", mining="fixed", negatives=2, candidates=5, random_negatives=0, temperature=0.2,
                              inputs="image", augment=True, set=["tasks.coco-ir.batch_size=8"])
    from cotrain.config import config_from_dict

    cfg = config_from_dict(rt.retrieval_config(args, seed=3))
    (task,) = cfg.tasks
    r = task.retrieval
    assert (r.loss, r.mining, r.negatives, r.candidates, r.random_negatives, r.temperature) == \
        ("contrastive", "fixed", 2, 5, 0, 0.2)
    assert task.inputs == ["image", "text"] and [t.kind for t in task.transforms] == ["image_augment"]
    assert task.batch_size == 8 and task.source.n_train == 123
    assert cfg.run.steps == 7 and cfg.run.seed == 3 and not cfg.schedule.dsg.enabled


def test_a_tiny_run_prints_joint_and_dual_recall(tmp_path, capsys):
    rt = _module()
    small = [f"tasks.coco-ir.source.{k}={v}" for k, v in (("n_val", 8), ("n_test", 10))]
    argv = ["--loss", "both", "--steps", "2", "--n-train", "40", "--seeds", "0", "--runs-dir", str(tmp_path / "runs"),
            "--json", str(tmp_path / "r.json"), "--set", f"data.root={tmp_path / 'data'}"]
    for s in small:
        argv += ["--set", s]
    assert rt.main(argv) == 0
    out = capsys.readouterr().out
    assert "| seed | joint c2i R@1 |" in out and "dual i2c R@10" in out
    row = next(line for line in out.splitlines() if line.startswith("| 0 |"))
    assert row.split("|")[-4].strip() == "10"  # the pool: 10 test images
    assert (tmp_path / "r.json").is_file()
