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


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not found")
def test_two_ranks_average_gradients_and_stay_identical(tmp_path):
    out = tmp_path / "ddp.json"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(WORKER), str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["world"] == 2
    assert r["averaged"] == [1.5, 1.5, 1.5] and r["q_grad_is_none"]
    assert r["same_weights"] and r["trained"] > 0
    assert r["different_batches"]  # each rank draws its own batches
    assert r["task_steps"] == {"img": 6, "aud": 6} and r["results"] == ["aud", "img"]
    assert (Path(r["checkpoint"]) / "model.safetensors").is_file()
