"""Data-parallel training under torchrun (2 processes, gloo on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cotrain.train.distributed import DistInfo, init_distributed, rank_device

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_single_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and not info.enabled and info.is_main
    assert rank_device("cuda", info) == "cuda"
    assert rank_device("cuda", DistInfo(1, 2, 1)) == "cuda:1" and rank_device("cpu", DistInfo(1, 2, 1)) == "cpu"


def test_two_ranks_average_gradients_and_stay_identical(tmp_path, torchrun):
    r = torchrun(WORKER, tmp_path / "ddp.json")
    assert r["world"] == 2
    assert r["averaged"] == [1.5, 1.5, 1.5] and r["q_grad_is_none"]
    assert r["same_weights"] and r["trained"] > 0
    assert r["different_batches"]  # each rank draws its own batches
    assert r["task_steps"] == {"img": 6, "aud": 6} and r["results"] == ["aud", "img"]
    assert (Path(r["checkpoint"]) / "model.safetensors").is_file()


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not found")
def test_cotrain_train_under_torchrun_as_a_user_runs_it(tmp_path):
    """The README's command: ``torchrun --standalone --nproc_per_node=2 .venv/bin/cotrain train my.yaml``,
    defaults on (progress bar, tensorboard); both workers leave with status 0 through exit_distributed."""
    from test_cli import write_cfg

    cfg = write_cfg(tmp_path, steps=12, eval_every=12, checkpoint_every=12, progress=True, tensorboard=True)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(bindir / "torchrun"), "--standalone", "--nproc_per_node=2", str(bindir / "cotrain"), "train", str(cfg)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert sorted(results) == ["bright", "tone"]
    assert (run / "checkpoints" / "latest").exists() and any((run / "tb").iterdir())
    assert "tasks beat chance" in proc.stdout
