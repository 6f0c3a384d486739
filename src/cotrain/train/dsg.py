"""Dynamic Stop-and-Go (DSG, 12-in-1 section 3.3 / Algorithm 1): per-task go/stop state machine.

Every task starts in **go** mode and trains at every iteration the schedule offers it. Once per
task epoch the trainer feeds the task's validation metric (higher is better; pass ``-loss`` for a
loss) to :meth:`DynamicStopAndGo.observe`:

- **converge (go -> stop)**: the last ``converge_epochs`` epochs improved by less than
  ``converge_tol`` on the best value seen earlier in the current go phase. Precisely, with the go
  phase's values ``v_0 .. v_t`` (``v_0`` is the first value observed in that phase) the task stops
  at epoch ``t`` when ``t >= converge_epochs`` and
  ``max(v_{t-k+1} .. v_t) - max(v_0 .. v_{t-k}) < tol`` (``k = converge_epochs``), or the
  difference is ``<= 0``. With the defaults (``k = 2``, 0.1%) a task stops after two flat epochs,
  never after one. Measuring against the *phase's* best (not the all-time best) lets a task that
  went back to go after a drop keep training while it recovers.
- **diverge (stop -> go)**: while stopped, a value at least ``diverge_tol`` below the task's
  all-time best (tracked across go and stop phases) sends it back to go. A go phase then starts
  afresh from that value.

``relative=True`` (default, as the official 12-in-1 code's ``threshold_mode="rel"``) takes both
tolerances as fractions of ``|best|`` (0.001 = 0.1%); ``relative=False`` takes them as absolute
metric differences.

**Which iterations a stopped task trains.** Each task counts the iterations offered to it,
``n = 0, 1, 2, ...`` (one per distinct ``step`` passed to :meth:`should_update`, in go and stop mode
alike). In stop mode iteration ``n`` trains iff ``n % delta == 0``. This is the official code's
``iterId % train_iter_gap == 0`` counted per task instead of over global steps: with a schedule that
gives one task per global step (e.g. round-robin over K tasks, task ``s % K`` at step ``s``) a global
``step % delta`` test would starve every task whose offset is not a multiple of ``gcd(K, delta)``.
The counters are part of :meth:`state_dict`, so a resumed run makes the same decisions. Asking
twice about the same step gives the same answer without counting twice; steps must not go back.

**Learning-rate drops** (:meth:`on_lr_drop`; the paper is silent). ``lr_drop="reset"`` (default)
puts every task back to go and forgets its metric history (best value, go-phase values), as the
official implementation does (``task_stop_controller[task_id]._reset()`` at each drop): after a drop
the validation metric typically jumps, so plateaus measured at the old rate are stale, and a task
frozen at sparse updates would miss most of the low-rate fine-tuning. ``lr_drop="keep"`` leaves
states and history untouched. Iteration counters are kept under both policies.
"""

from __future__ import annotations

import math
from typing import Literal

from cotrain.config import ConfigError

GO, STOP = "go", "stop"
LR_DROP_POLICIES = ("keep", "reset")


class DynamicStopAndGo:
    """Per-task go/stop controller; JSON-serialisable through :meth:`state_dict`.

    Args:
        tasks: task names (unique).
        delta: iteration gap in stop mode (the paper's Δ; Figure 2 uses 4).
        converge_tol, converge_epochs: go -> stop when ``converge_epochs`` epochs improve by less
            than ``converge_tol`` (see the module docstring).
        diverge_tol: stop -> go when the value is ``diverge_tol`` or more below the task's best.
        relative: tolerances as fractions of ``|best|`` (True) or absolute differences (False).
        lr_drop: ``"reset"`` or ``"keep"``; what :meth:`on_lr_drop` does.
    """

    def __init__(self, tasks: list[str], delta: int = 4, converge_tol: float = 0.001,
                 converge_epochs: int = 2, diverge_tol: float = 0.005, relative: bool = True,
                 lr_drop: Literal["keep", "reset"] = "reset") -> None:
        names = [str(t) for t in tasks]
        if not names:
            raise ValueError("DynamicStopAndGo needs at least one task")
        dup = sorted({t for t in names if names.count(t) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {dup}")
        if int(delta) != delta or delta < 1:
            raise ValueError(f"delta must be an integer >= 1, got {delta!r}")
        if int(converge_epochs) != converge_epochs or converge_epochs < 1:
            raise ValueError(f"converge_epochs must be an integer >= 1, got {converge_epochs!r}")
        for name, tol in (("converge_tol", converge_tol), ("diverge_tol", diverge_tol)):
            if not (math.isfinite(tol) and tol >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {tol!r}")
        if lr_drop not in LR_DROP_POLICIES:
            raise ValueError(f"unknown lr_drop policy {lr_drop!r}; choose one of {', '.join(LR_DROP_POLICIES)}")
        self.tasks = names
        self.delta = int(delta)
        self.converge_tol = float(converge_tol)
        self.converge_epochs = int(converge_epochs)
        self.diverge_tol = float(diverge_tol)
        self.relative = bool(relative)
        self.lr_drop = lr_drop
        self.history: list[tuple[int, str, str]] = []  # (step, task, new state) per transition
        self._task: dict[str, dict] = {t: _fresh() for t in names}

    # -- queries ----------------------------------------------------------------------------
    def state(self, task: str) -> str:
        """``"go"`` or ``"stop"``."""
        return self._get(task)["state"]

    def best(self, task: str) -> float | None:
        """The task's best observed value (None before the first observation or after a reset)."""
        return self._get(task)["best"]

    def should_update(self, task: str, step: int) -> bool:
        """Whether ``task`` trains at global ``step``: always in go mode; in stop mode on the task's
        iterations ``n`` with ``n % delta == 0`` (``n`` counts the distinct steps offered to it)."""
        rec = self._get(task)
        step = int(step)
        if rec["last_step"] is not None and step < rec["last_step"]:
            raise ValueError(f"task {task!r}: step {step} is before the last step asked about "
                             f"({rec['last_step']}); steps must not go back (load_state_dict to resume)")
        if step != rec["last_step"]:
            rec["iterations"] += 1
            rec["last_step"] = step
        n = rec["iterations"] - 1  # this step's iteration index
        return rec["state"] == GO or n % self.delta == 0

    # -- updates ----------------------------------------------------------------------------
    def observe(self, task: str, value: float, step: int) -> str | None:
        """Feed the task's validation metric (higher is better) for one task epoch, seen at global
        ``step``. Returns ``"stop"`` or ``"go"`` when the task changes state, else None."""
        rec = self._get(task)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"task {task!r}: validation value must be finite, got {value!r}")
        best = rec["best"]
        rec["best"] = value if best is None else max(best, value)
        if rec["state"] == GO:
            phase = rec["phase"]
            phase.append(value)
            k = self.converge_epochs
            if len(phase) > k:
                before, recent = max(phase[:-k]), max(phase[-k:])
                gain = recent - before
                if gain <= 0 or gain < self._tol(self.converge_tol, before):
                    return self._switch(task, STOP, step)
            return None
        drop = best - value
        if drop > 0 and drop >= self._tol(self.diverge_tol, best):
            transition = self._switch(task, GO, step)
            rec["phase"] = [value]
            return transition
        return None

    def on_lr_drop(self, step: int) -> list[str]:
        """Apply the ``lr_drop`` policy at a learning-rate drop at global ``step``. ``"reset"``:
        every task back to go with no metric history (iteration counters kept); ``"keep"``: nothing
        changes. Returns the tasks that changed state."""
        if self.lr_drop == "keep":
            return []
        changed = []
        for task in self.tasks:
            rec = self._task[task]
            if rec["state"] == STOP:
                self._switch(task, GO, step)
                changed.append(task)
            rec["best"], rec["phase"] = None, []
        return changed

    # -- resume -----------------------------------------------------------------------------
    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "delta": self.delta, "converge_tol": self.converge_tol,
                "converge_epochs": self.converge_epochs, "diverge_tol": self.diverge_tol,
                "relative": self.relative, "lr_drop": self.lr_drop}

    def state_dict(self) -> dict:
        """Settings, per-task state and the transition history; JSON-serialisable."""
        return {**self.settings(),
                "per_task": {t: {**r, "phase": list(r["phase"])} for t, r in self._task.items()},
                "history": [[s, t, x] for s, t, x in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`. Raises ValueError naming every setting that differs from
        this controller's (the settings are configuration, not state): a ConfigError, which is a ValueError."""
        mine = self.settings()
        diffs = [f"{k}: checkpoint has {state.get(k, '<missing>')!r}, config gives {v!r}"
                 for k, v in mine.items() if state.get(k) != v]
        if diffs:
            raise ConfigError("the checkpoint's stop-and-go settings differ from the config's:\n  " + "\n  ".join(diffs))
        per_task = state["per_task"]
        self._task = {t: {**_fresh(), **per_task[t], "phase": [float(x) for x in per_task[t]["phase"]]}
                      for t in self.tasks}
        self.history = [(int(s), str(t), str(x)) for s, t, x in state["history"]]

    # -- display ----------------------------------------------------------------------------
    def describe(self) -> str:
        mode = "relative" if self.relative else "absolute"
        states = ", ".join(f"{t} {self._task[t]['state']}" for t in self.tasks)
        return (f"dynamic stop-and-go: delta {self.delta}, stop after {self.converge_epochs} epochs "
                f"< {self.converge_tol:g} ({mode}), go on a drop >= {self.diverge_tol:g} from best, "
                f"lr drop: {self.lr_drop}; {states}")

    def __repr__(self) -> str:
        return f"<DynamicStopAndGo {self.describe()}>"

    # -- internals --------------------------------------------------------------------------
    def _get(self, task: str) -> dict:
        rec = self._task.get(task)
        if rec is None:
            raise KeyError(f"unknown task {task!r}; tasks: {self.tasks}")
        return rec

    def _tol(self, tol: float, reference: float) -> float:
        return tol * abs(reference) if self.relative else tol

    def _switch(self, task: str, new: str, step: int) -> str:
        rec = self._task[task]
        rec["state"] = new
        if new == GO:
            rec["phase"] = []
        self.history.append((int(step), task, new))
        return new


def _fresh() -> dict:
    # state; all-time best; values of the current go phase; iterations offered; last step offered
    return {"state": GO, "best": None, "phase": [], "iterations": 0, "last_step": None}
