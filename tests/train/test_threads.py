"""The torch thread count of a run: run.threads, OMP_NUM_THREADS, CPU affinity, cgroup quota; the
OpenMP wait-policy default. Fake affinity masks and cgroup trees, no timings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from synthetic import tiny_cfg, tiny_data
from cotrain.train import threads
from cotrain.train.threads import (
    apply_threads,
    available_cpus,
    cgroup_cpu_limit,
    choose_threads,
    set_openmp_defaults,
)
from cotrain.train.trainer import Trainer


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake machine: ``machine(cpus, proc="0::/\\n")`` sets the affinity mask to ``cpus`` CPUs and
    this process's /proc/self/cgroup; returns the (empty) cgroup root to write quota files into."""
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = tmp_path / "proc_self_cgroup"
    monkeypatch.setattr(threads, "CGROUP_ROOT", root)
    monkeypatch.setattr(threads, "PROC_CGROUP", proc)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def make(cpus: int, proc_text: str = "0::/") -> Path:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
        proc.write_text(proc_text + "\n")
        return root

    return make


def test_explicit_threads_win_over_everything(machine, monkeypatch):
    root = machine(1)
    write(root / "cpu.max", "100000 100000")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(6) == 6


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_bad_requested_threads_are_named(bad):
    with pytest.raises(ValueError, match=r"run\.threads: expected an integer >= 1"):
        choose_threads(bad)


def test_default_is_the_affinity_without_quota(machine):
    machine(8)
    assert cgroup_cpu_limit() is None
    assert choose_threads(None) == 8


def test_affinity_below_the_machine_is_respected(machine):
    machine(3)  # e.g. `taskset -c 0-2` on a bigger machine
    assert choose_threads(None) == 3


@pytest.mark.parametrize("cpu_max, expected", [
    ("200000 100000", 2),   # --cpus=2
    ("150000 100000", 1),   # 1.5 CPUs: round down
    ("50000 100000", 1),    # half a CPU: still one thread
    ("1600000 100000", 8),  # quota above the affinity: the affinity caps it
    ("max 100000", 8),      # no limit
])
def test_cgroup_v2_quota_caps_the_default(machine, cpu_max, expected):
    root = machine(8)
    write(root / "cgroup.controllers", "cpu memory")
    write(root / "cpu.max", cpu_max)
    assert choose_threads(None) == expected


def test_cgroup_v2_limit_of_an_ancestor_applies(machine):
    root = machine(16, "0::/jobs/mine")
    write(root / "jobs" / "cpu.max", "300000 100000")
    write(root / "jobs" / "mine" / "cpu.max", "max 100000")
    write(root / "cpu.max", "max 100000")
    assert cgroup_cpu_limit() == pytest.approx(3.0)
    assert choose_threads(None) == 3


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota_caps_the_default(machine, mount):
    root = machine(8, "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/")
    write(root / mount / "docker" / "abc" / "cpu.cfs_quota_us", "250000")
    write(root / mount / "docker" / "abc" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit() == pytest.approx(2.5)
    assert choose_threads(None) == 2


def test_cgroup_v1_unlimited_quota_is_ignored(machine):
    root = machine(4, "1:cpu:/")
    write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    write(root / "cpu" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit() is None
    assert choose_threads(None) == 4


def test_namespaced_container_reads_the_mount_root(machine):
    """Inside a container /proc/self/cgroup may name a host path that is not visible: the files at
    the mount root still apply."""
    root = machine(8, "0::/../host/slice")
    write(root / "cpu.max", "100000 100000")
    assert choose_threads(None) == 1


def test_smallest_limit_of_v1_and_v2_wins(machine):
    root = machine(8, "1:cpu:/\n0::/")
    write(root / "cpu.max", "400000 100000")
    write(root / "cpu" / "cpu.cfs_quota_us", "200000")
    write(root / "cpu" / "cpu.cfs_period_us", "100000")
    assert available_cpus() == 2


def test_malformed_quota_file_is_named_and_ignored(machine):
    root = machine(4)
    write(root / "cpu.max", "lots")
    with pytest.warns(UserWarning, match=r"cpu\.max: expected '<quota> <period>'.*'lots'"):
        assert choose_threads(None) == 4


def test_omp_num_threads_is_respected(machine, monkeypatch):
    machine(8)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for several processes per machine
    assert choose_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")  # nested-level list: the first level
    assert choose_threads(None) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.warns(UserWarning, match="OMP_NUM_THREADS='many' is not a positive integer"):
        assert choose_threads(None) == 8


def test_openmp_defaults_make_idle_threads_sleep_unless_chosen():
    env: dict[str, str] = {}
    set_openmp_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "20000"}):
        env = dict(chosen)
        set_openmp_defaults(env)
        assert env == chosen
    assert set_openmp_defaults({}) is False  # torch is imported in this test process: too late here


def test_apply_threads_sets_torch(machine):
    before = torch.get_num_threads()
    try:
        machine(1)
        assert apply_threads(None) == 1 and torch.get_num_threads() == 1
        assert apply_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_trainer_default_follows_the_quota(machine, tmp_path):
    """run.threads unset: the Trainer uses what the cgroup allows, not torch's count of cores."""
    before = torch.get_num_threads()
    try:
        root = machine(4)
        write(root / "cpu.max", "100000 100000")
        torch.set_num_threads(2)
        cfg = tiny_cfg(tmp_path)
        assert cfg.run.threads is None
        Trainer(cfg, data=tiny_data())
        assert torch.get_num_threads() == 1
        Trainer(tiny_cfg(tmp_path, run={"threads": 2}), data=tiny_data())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
