"""How many torch threads a run uses, and the OpenMP setting that keeps a shared machine usable.

``run.threads`` wins when set. Otherwise :func:`choose_threads` takes ``OMP_NUM_THREADS`` when a
launcher (``torchrun`` sets it to 1) or the user set it, else the CPUs this process may really use:
its CPU affinity (``os.sched_getaffinity``, e.g. ``taskset``) capped by the cgroup CPU quota
(cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; a container's
``--cpus``), rounded down, at least 1.

The thread count alone does not make a shared machine degrade gracefully: torch's CPU kernels run
on an OpenMP pool (GNU libgomp in the pip wheels) whose idle threads busy-wait (spin) for a while
before sleeping. With two such processes on the same cores, each one's spinning threads burn the
time slices the other one's working threads need, and both slow down by an order of magnitude
instead of by half. ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at once. libgomp reads it
once, when torch is imported (``torch.set_num_threads`` later changes nothing about it), so
:func:`set_openmp_defaults` must run before the first ``import torch``: the ``cotrain`` command
calls it first thing; Python users set the variable in their shell or before importing torch.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def affinity_cpus() -> int:
    """How many CPUs this process may be scheduled on (its affinity mask; ``os.cpu_count()`` where
    the platform has no ``sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:  # absent or unreadable: no limit known from this file
        return None


def _quota_v2(path: Path) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` file (``"<quota> <period>"`` or ``"max <period>"``)."""
    text = _read(path)
    if text is None:
        return None
    parts = text.split()
    if len(parts) == 2 and parts[0] == "max" and parts[1].isdigit():
        return None
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]) > 0:
        return int(parts[0]) / int(parts[1])
    warnings.warn(f"{path}: expected '<quota> <period>' or 'max <period>', got {text!r}; ignoring it", stacklevel=3)
    return None


def _quota_v1(folder: Path) -> float | None:
    """CPUs allowed by a cgroup v1 cpu folder (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; -1 = no limit)."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        warnings.warn(f"{folder}: expected integer cpu.cfs_quota_us / cpu.cfs_period_us, got {quota!r} / {period!r}; "
                      "ignoring them", stacklevel=3)
        return None
    return q / p if q > 0 and p > 0 else None


def _own_paths(proc_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup paths ``(v2, v1 cpu controller)`` from ``/proc/self/cgroup`` ("/" when unknown)."""
    v2 = v1 = "/"
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _ancestors(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and each folder above it up to ``mount`` (a limit anywhere above applies too)."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path | None = None, proc_cgroup: Path | None = None) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), the smallest found over cgroup v2
    and v1 and the folders above the process's own; None when no quota is set or none is visible.
    ``root`` / ``proc_cgroup`` default to :data:`CGROUP_ROOT` / :data:`PROC_CGROUP`."""
    root = CGROUP_ROOT if root is None else root
    v2_path, v1_path = _own_paths(PROC_CGROUP if proc_cgroup is None else proc_cgroup)
    limits = [_quota_v2(d / "cpu.max") for d in _ancestors(root, v2_path)]
    for mount in V1_CPU_MOUNTS:
        limits += [_quota_v1(d) for d in _ancestors(root / mount, v1_path)]
    found = [x for x in limits if x is not None]
    return min(found) if found else None


def available_cpus() -> int:
    """The CPUs this process can really use: its affinity capped by the cgroup quota (rounded
    down: 1.5 CPUs of quota -> 1 thread, which is never throttled), at least 1."""
    n = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return n


def _omp_num_threads() -> int | None:
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # OpenMP allows a per-level list
    if not text:
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    warnings.warn(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']!r} is not a positive integer; ignoring it",
                  stacklevel=3)
    return None


def choose_threads(requested: int | None) -> int:
    """The torch intra-op thread count of a run: ``requested`` (``run.threads``) when given, else
    ``OMP_NUM_THREADS`` when set, else :func:`available_cpus`."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"run.threads: expected an integer >= 1 or unset, got {requested!r}")
        return requested
    env = _omp_num_threads()
    return env if env is not None else available_cpus()


def set_openmp_defaults(environ: MutableMapping[str, str] | None = None) -> bool:
    """Make idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), unless the
    user chose a wait policy (``OMP_WAIT_POLICY`` or libgomp's ``GOMP_SPINCOUNT``).

    Returns whether the setting can still take effect in this process, i.e. torch is not imported
    yet (child processes inherit it either way). ``environ`` defaults to ``os.environ``."""
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "torch" not in sys.modules


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op thread count to :func:`choose_threads` of ``requested``; returns it."""
    import torch

    n = choose_threads(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
