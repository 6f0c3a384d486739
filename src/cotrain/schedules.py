"""Task schedules: which task's batch comes at global step ``s`` (PolyViT's five schedules).

A schedule is a pure function of the global step, fixed at construction from the task names, the
seed and (depending on the kind) step budgets or sampling probabilities. It keeps no position, so a
resumed run continues exactly where it stopped and every distributed rank picks the same task at
the same step without communicating.

Kinds (``ScheduleConfig.kind``):

- ``task_by_task``: the tasks one after another, task ``i`` for its budget of steps; steps past
  the end stay on the last task.
- ``alternating``: round-robin, task ``s % K`` at step ``s``.
- ``uniform``: one task per step, drawn uniformly at random.
- ``weighted``: one task per step, drawn with probability proportional to an explicit weight,
  to the training-set size, or to size^(1/T) (``ScheduleConfig.weighting`` / ``temperature``).
- ``accumulate``: every task at every step; the trainer sums the gradients of all tasks and makes
  one update (``updates_per_step == "all"``).

Random draws come in blocks of :data:`BLOCK` steps, block ``b`` drawn from
``np.random.default_rng((seed, _SALT, b))``. Step ``s`` therefore depends only on the seed, the
probabilities and ``s`` -- not on the run length, so a run extended later keeps its prefix -- and
any step can be looked up without generating the steps before it. (``_SALT`` keeps these streams
apart from the data iterators', which use ``default_rng((seed, epoch))``.)
"""

from __future__ import annotations

import bisect
import math
from typing import Literal

import numpy as np

from cotrain.config import ConfigError, ScheduleConfig

BLOCK = 4096  # steps drawn at once by the random schedules
_CACHE_BLOCKS = 8  # blocks kept in memory per schedule (a memo only: results never depend on it)
_SALT = 0x5C4ED  # separates the schedule's random stream from other users of the run seed

KINDS = ("task_by_task", "alternating", "uniform", "weighted", "accumulate")


def _seed_entropy(seed: int) -> int:
    """NumPy seeds must be non-negative; map any Python int onto one."""
    return int(seed) % (1 << 64)


class Schedule:
    """Base class. Subclasses set ``kind`` and implement :meth:`indices` (or override
    :meth:`tasks_at` / :meth:`counts`)."""

    kind: str = ""
    updates_per_step: Literal["one", "all"] = "one"

    def __init__(self, task_names: list[str]) -> None:
        names = [str(n) for n in task_names]
        if not names:
            raise ValueError("a schedule needs at least one task")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {dup}")
        self.task_names: list[str] = names

    # -- lookup -----------------------------------------------------------------------------
    def task_index_at(self, step: int) -> int:
        """Index into ``task_names`` of the task at ``step`` (one-task schedules)."""
        raise NotImplementedError

    def tasks_at(self, step: int) -> list[str]:
        """The task(s) trained at global ``step``: one name, or all names for ``accumulate``."""
        return [self.task_names[self.task_index_at(step)]]

    def indices(self, start: int, stop: int) -> np.ndarray:
        """Task indices (int64) for the steps ``start, ..., stop - 1`` (one-task schedules)."""
        raise NotImplementedError

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """How many of the steps in ``[start, stop)`` train each task."""
        _check_range(start, stop)
        c = np.bincount(self.indices(start, stop), minlength=len(self.task_names))
        return {n: int(c[i]) for i, n in enumerate(self.task_names)}

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What defines the sequence (JSON-serialisable); used to check a resumed run."""
        return {"kind": self.kind, "task_names": list(self.task_names)}

    def load_state_dict(self, state: dict) -> None:
        """Check that a checkpoint's schedule is this one. The schedule has no position to restore,
        so this only verifies; it raises ConfigError naming every field that differs."""
        mine = self.state_dict()
        diffs = [
            f"{key}: checkpoint has {state.get(key, '<missing>')!r}, config gives {mine.get(key, '<missing>')!r}"
            for key in sorted(set(mine) | set(state))
            if not _same(state.get(key, _MISSING), mine.get(key, _MISSING))
        ]
        if diffs:
            raise ConfigError("the checkpoint's task schedule differs from the configured one:\n  " + "\n  ".join(diffs))

    # -- display ----------------------------------------------------------------------------
    def describe(self) -> str:
        return f"{self.kind}: {', '.join(self.task_names)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


_MISSING = object()


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def _check_step(step: int) -> int:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


def _check_range(start: int, stop: int) -> None:
    if start < 0 or stop < start:
        raise ValueError(f"need 0 <= start <= stop, got [{start}, {stop})")


# ------------------------------------------------------------------------------------ one task
class TaskByTaskSchedule(Schedule):
    """Task ``i`` for ``lengths[i]`` consecutive steps, in order; the last task continues after."""

    kind = "task_by_task"

    def __init__(self, task_names: list[str], lengths: list[int]) -> None:
        super().__init__(task_names)
        if len(lengths) != len(self.task_names) or any(int(n) < 1 for n in lengths):
            raise ValueError(f"task_by_task needs one length >= 1 per task, got {lengths}")
        self.lengths = [int(n) for n in lengths]
        self.ends = list(np.cumsum(self.lengths).tolist())  # step at which task i stops

    def task_index_at(self, step: int) -> int:
        return min(bisect.bisect_right(self.ends, _check_step(step)), len(self.ends) - 1)

    def indices(self, start: int, stop: int) -> np.ndarray:
        _check_range(start, stop)
        idx = np.searchsorted(np.asarray(self.ends), np.arange(start, stop), side="right")
        return np.minimum(idx, len(self.ends) - 1)

    def counts(self, start: int, stop: int) -> dict[str, int]:
        _check_range(start, stop)
        out, begin = {}, 0
        for i, (name, end) in enumerate(zip(self.task_names, self.ends)):
            end = math.inf if i == len(self.ends) - 1 else end
            out[name] = int(max(0, min(stop, end) - max(start, begin)))
            begin = end
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "lengths": list(self.lengths)}

    def describe(self) -> str:
        parts = ", ".join(f"{n} {k}" for n, k in zip(self.task_names, self.lengths))
        return f"task_by_task: {parts} steps"


class AlternatingSchedule(Schedule):
    """Round-robin: task ``step % K``."""

    kind = "alternating"

    def task_index_at(self, step: int) -> int:
        return _check_step(step) % len(self.task_names)

    def indices(self, start: int, stop: int) -> np.ndarray:
        _check_range(start, stop)
        return np.arange(start, stop) % len(self.task_names)

    def counts(self, start: int, stop: int) -> dict[str, int]:
        _check_range(start, stop)
        k = len(self.task_names)
        # steps s in [start, stop) with s % k == i  =  #{s < stop} - #{s < start}
        return {n: _below(stop, i, k) - _below(start, i, k) for i, n in enumerate(self.task_names)}

    def describe(self) -> str:
        return f"alternating: {' -> '.join(self.task_names)}"


def _below(n: int, i: int, k: int) -> int:
    """Number of s in [0, n) with s % k == i."""
    return (n - i + k - 1) // k if n > i else 0


class RandomSchedule(Schedule):
    """One task per step, drawn independently with fixed ``probabilities`` (``uniform``/``weighted``)."""

    def __init__(self, task_names: list[str], probabilities: list[float], seed: int, *,
                 kind: str = "weighted", detail: str = "") -> None:
        super().__init__(task_names)
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (len(self.task_names),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"need one finite, non-negative probability per task (not all zero), got {probabilities}")
        p = p / p.sum()
        self.kind = kind
        self.detail = detail
        self.seed = int(seed)
        self.probabilities: dict[str, float] = {n: float(x) for n, x in zip(self.task_names, p)}
        self._cdf = np.cumsum(p)
        self._cdf[-1] = 1.0
        self._dtype = np.int8 if len(p) <= 127 else np.int32
        self._cache: dict[int, list[int]] = {}
        self._hot: tuple[int, list[int]] = (-1, [])  # (block, its indices): one attribute, swapped whole

    def _block(self, b: int) -> np.ndarray:
        """Task indices of steps ``[b * BLOCK, (b + 1) * BLOCK)``, drawn afresh."""
        u = np.random.default_rng((_seed_entropy(self.seed), _SALT, b)).random(BLOCK)
        idx = np.searchsorted(self._cdf, u, side="right")
        return np.minimum(idx, len(self._cdf) - 1).astype(self._dtype)

    def _cached_block(self, b: int) -> list[int]:
        block = self._cache.get(b)
        if block is None:
            if len(self._cache) >= _CACHE_BLOCKS:
                self._cache.pop(next(iter(self._cache)))  # oldest inserted
            block = self._cache[b] = self._block(b).tolist()
        return block

    def task_index_at(self, step: int) -> int:
        b, r = divmod(_check_step(step), BLOCK)
        hot = self._hot
        if hot[0] != b:
            hot = self._hot = (b, self._cached_block(b))
        return hot[1][r]

    def indices(self, start: int, stop: int) -> np.ndarray:
        _check_range(start, stop)
        if start == stop:
            return np.zeros(0, dtype=np.int64)
        first, last = start // BLOCK, (stop - 1) // BLOCK
        parts = [self._block(b) for b in range(first, last + 1)]  # not cached: may be many
        flat = np.concatenate(parts).astype(np.int64)
        return flat[start - first * BLOCK: stop - first * BLOCK]

    def counts(self, start: int, stop: int) -> dict[str, int]:
        _check_range(start, stop)
        total = np.zeros(len(self.task_names), dtype=np.int64)
        for b in range(start // BLOCK, -(-stop // BLOCK) if stop > start else 0):  # blocks overlapping
            lo, hi = max(start, b * BLOCK) - b * BLOCK, min(stop, (b + 1) * BLOCK) - b * BLOCK
            total += np.bincount(self._block(b)[lo:hi], minlength=len(total))
        return {n: int(total[i]) for i, n in enumerate(self.task_names)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seed": self.seed,
                "probabilities": [self.probabilities[n] for n in self.task_names]}

    def describe(self) -> str:
        probs = ", ".join(f"{n} {p:.3f}" for n, p in self.probabilities.items())
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}{detail}: {probs}; seed {self.seed}"


# ------------------------------------------------------------------------------------ all tasks
class AccumulateSchedule(Schedule):
    """Every task at every step, in the given order; one optimizer update per step."""

    kind = "accumulate"
    updates_per_step = "all"

    def tasks_at(self, step: int) -> list[str]:
        _check_step(step)
        return list(self.task_names)

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """Every task gets every step (one batch per task per step)."""
        _check_range(start, stop)
        return {n: stop - start for n in self.task_names}

    def describe(self) -> str:
        return f"accumulate: {' + '.join(self.task_names)} per update"


# ------------------------------------------------------------------------------------ building
def _even_split(total: int, k: int) -> list[int]:
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _build_task_by_task(cfg, names, steps, seed, sizes, budgets, weights) -> Schedule:
    budgets = {n: b for n, b in (budgets or {}).items() if b is not None}
    _unknown_keys(budgets, names, "budgets")
    given = {n: int(budgets[n]) for n in names if n in budgets}
    bad = {n: b for n, b in given.items() if b < 1}
    if bad:
        raise ConfigError(f"task_by_task step budgets must be >= 1; got {bad}")
    missing = [n for n in names if n not in given]
    used = sum(given.values())
    if not missing:
        if used != steps:
            raise ConfigError(
                f"task_by_task step budgets sum to {used} ({', '.join(f'{n}={b}' for n, b in given.items())}) "
                f"but the run has {steps} steps; make them equal")
        lengths = [given[n] for n in names]
    else:
        # tasks without a budget share the steps the others leave, evenly (remainder to the first)
        left = steps - used
        if left < len(missing):
            what = f"after the budgets ({used} steps) " if given else ""
            raise ConfigError(
                f"task_by_task: {left} steps left {what}for {len(missing)} task(s) without a budget "
                f"({', '.join(missing)}); every task needs at least one step")
        share = dict(zip(missing, _even_split(left, len(missing))))
        lengths = [given.get(n, share.get(n)) for n in names]
    return TaskByTaskSchedule(names, lengths)


def _build_alternating(cfg, names, steps, seed, sizes, budgets, weights) -> Schedule:
    return AlternatingSchedule(names)


def _build_accumulate(cfg, names, steps, seed, sizes, budgets, weights) -> Schedule:
    return AccumulateSchedule(names)


def _build_uniform(cfg, names, steps, seed, sizes, budgets, weights) -> Schedule:
    return RandomSchedule(names, [1.0] * len(names), seed, kind="uniform")


def _build_weighted(cfg, names, steps, seed, sizes, budgets, weights) -> Schedule:
    how = cfg.weighting
    if how == "explicit":
        weights = weights or {}
        _unknown_keys(weights, names, "weights")
        lacking = [n for n in names if weights.get(n) is None]
        if lacking:
            raise ConfigError(f"weighted schedule with weighting=explicit: no sampling weight for task(s) "
                             f"{', '.join(lacking)} (set `weight` on every task)")
        w = [float(weights[n]) for n in names]
        bad = [n for n, x in zip(names, w) if not (x > 0 and math.isfinite(x))]
        if bad:
            raise ConfigError(f"sampling weights must be positive and finite; bad for {', '.join(bad)}")
        return RandomSchedule(names, w, seed, kind="weighted", detail="explicit weights")
    if how in ("size", "temperature"):
        sizes = sizes or {}
        _unknown_keys(sizes, names, "sizes")
        lacking = [n for n in names if sizes.get(n) is None]
        if lacking:
            raise ConfigError(f"weighted schedule with weighting={how} needs the training-set size of "
                             f"task(s) {', '.join(lacking)}")
        n = np.array([float(sizes[t]) for t in names])
        if np.any(n <= 0):
            raise ConfigError(f"training-set sizes must be positive, got {dict(zip(names, n.tolist()))}")
        if how == "size":
            return RandomSchedule(names, n, seed, kind="weighted", detail="by size")
        t = float(cfg.temperature)
        # n^(1/T) computed in log space, relative to the largest, so huge sizes cannot overflow
        p = np.exp((np.log(n) - np.log(n).max()) / t)
        return RandomSchedule(names, p, seed, kind="weighted", detail=f"size^(1/T), T={t:g}")
    raise ConfigError(f"unknown weighting {how!r}; choose one of explicit, size, temperature")


def _unknown_keys(mapping: dict, names: list[str], what: str) -> None:
    extra = sorted(set(mapping) - set(names))
    if extra:
        raise ConfigError(f"{what} given for unknown task(s) {extra}; tasks: {names}")


_BUILDERS = {
    "task_by_task": _build_task_by_task,
    "alternating": _build_alternating,
    "uniform": _build_uniform,
    "weighted": _build_weighted,
    "accumulate": _build_accumulate,
}


def build_schedule(
    cfg: ScheduleConfig,
    task_names: list[str],
    *,
    steps: int,
    seed: int,
    sizes: dict[str, int] | None = None,
    budgets: dict[str, int | None] | None = None,
    weights: dict[str, float | None] | None = None,
) -> Schedule:
    """Build the schedule ``cfg.kind`` over ``task_names`` (in that order).

    ``steps`` (the run's total) is used only by ``task_by_task`` (to split it among tasks without
    a budget and to check the budgets); ``seed`` only by the random kinds. ``sizes`` (training-set
    sizes) are needed for ``weighted`` with ``size``/``temperature`` weighting, ``weights``
    (``TaskConfig.weight``) for ``explicit`` weighting, ``budgets`` (``TaskConfig.steps``) are
    optional for ``task_by_task``: when some tasks have none, those share the remaining steps.
    """
    kind = getattr(cfg, "kind", None)
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(f"unknown schedule kind {kind!r}; choose one of {', '.join(KINDS)}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    return builder(cfg, list(task_names), int(steps), int(seed), sizes, budgets, weights)
