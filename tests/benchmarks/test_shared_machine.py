"""benchmarks/shared_machine.py: its variants and run config (no training: the script itself is timed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cotrain.config import config_from_dict

_spec = importlib.util.spec_from_file_location(
    "bench_shared_machine", Path(__file__).resolve().parents[2] / "benchmarks" / "shared_machine.py")
shared = sys.modules.setdefault("bench_shared_machine", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(shared)


def test_variants_parse():
    assert shared.parse_variant("default") == shared.Variant("default", None, False)
    assert shared.parse_variant(" 1 ") == shared.Variant("1", 1, False)
    assert shared.parse_variant("default/spin") == shared.Variant("default/spin", None, True)
    for bad in ("0", "two", "1/fast", ""):
        with pytest.raises(SystemExit, match="--variants"):
            shared.parse_variant(bad)


def test_run_config_leaves_threads_to_the_variant(tmp_path):
    for threads in (None, 1):
        cfg = config_from_dict(shared.make_raw(["shapes", "sounds"], threads, str(tmp_path)))
        assert cfg.run.threads == threads and cfg.run.device == "cpu"
        assert cfg.run.eval_every >= cfg.run.steps and cfg.run.checkpoint_every >= cfg.run.steps  # none while timed
        assert [t.name for t in cfg.tasks] == ["shapes", "sounds"]


def test_spin_variant_env_restores_libgomp_default(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    plain, spin = shared.worker_env(False), shared.worker_env(True)
    assert "OMP_WAIT_POLICY" not in plain and "GOMP_SPINCOUNT" not in plain  # the worker sets PASSIVE itself
    assert spin["GOMP_SPINCOUNT"] == "300000" and "OMP_WAIT_POLICY" not in spin
