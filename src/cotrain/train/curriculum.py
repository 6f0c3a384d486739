"""Curriculum and anti-curriculum pre-phases (12-in-1 sections 3.3 and 5, Table 6).

12-in-1 compares its stop-and-go schedule with two pre-phases before full round-robin training:

- **anti-curriculum**: first train the slowest-converging group, G1 (vocab-based VQA), then all
  tasks (harder -> easier).
- **curriculum**: first train the fastest-converging group, then all tasks (easier -> harder). The
  paper is inconsistent about which group that is: section 3.3 says "G3 (Referring Expressions)",
  section 5 (Table 6 text) says "we first train tasks in G4" (verification). The group is therefore
  a parameter (``first_group``) here; :data:`PAPER_GROUPS` records both readings.

:class:`PrePhase` wraps any base schedule (an object with ``tasks_at(step)``, ``state_dict()`` and
``describe()``, e.g. a :class:`cotrain.schedules.Schedule`): global steps ``0 .. steps - 1`` go
round-robin over ``tasks_first`` (task ``tasks_first[s % len]`` at step ``s``); step ``s >= steps``
is the base schedule's step ``s - steps``. Like the base schedules it is a pure function of the
step, so resuming needs no position.
"""

from __future__ import annotations

from cotrain.schedules import Schedule, _below, _check_range, _check_step

CURRICULUM_KINDS = ("none", "curriculum", "anti_curriculum")

#: First groups in the paper: curriculum per section 3.3 (G3) and per section 5 / Table 6 (G4);
#: anti-curriculum G1 in both.
PAPER_GROUPS = {"curriculum_sec3": "G3", "curriculum_table6": "G4", "anti_curriculum": "G1"}


class PrePhase(Schedule):
    """Round-robin over ``tasks_first`` for the first ``steps`` global steps, then ``base``.

    ``task_names`` are the base's (when it has them; ``tasks_first`` must be among them), else
    ``tasks_first``. ``updates_per_step`` is the base's; during the pre-phase :meth:`tasks_at`
    returns one task per step.
    """

    kind = "pre_phase"

    def __init__(self, tasks_first: list[str], steps: int, base, *, label: str = "pre_phase") -> None:
        first = [str(t) for t in tasks_first]
        if not first:
            raise ValueError("a pre-phase needs at least one task to train first")
        if int(steps) != steps or steps < 1:
            raise ValueError(f"pre-phase steps must be an integer >= 1, got {steps!r}")
        for attr in ("tasks_at", "state_dict", "describe"):
            if not callable(getattr(base, attr, None)):
                raise TypeError(f"the base schedule {base!r} has no {attr}() method")
        base_names = getattr(base, "task_names", None)
        if base_names is not None:
            unknown = [t for t in first if t not in base_names]
            if unknown:
                raise ValueError(f"pre-phase task(s) {unknown} are not in the base schedule's tasks {list(base_names)}")
        super().__init__(list(base_names) if base_names is not None else first)
        dup = sorted({t for t in first if first.count(t) > 1})
        if dup:
            raise ValueError(f"pre-phase tasks must be unique; repeated: {dup}")
        self.tasks_first = first
        self.steps = int(steps)
        self.base = base
        self.label = str(label)
        self.updates_per_step = getattr(base, "updates_per_step", "one")

    def in_pre_phase(self, step: int) -> bool:
        return _check_step(step) < self.steps

    def tasks_at(self, step: int) -> list[str]:
        """``[tasks_first[step % len]]`` while ``step < steps``, else ``base.tasks_at(step - steps)``."""
        if self.in_pre_phase(step):
            return [self.tasks_first[step % len(self.tasks_first)]]
        return list(self.base.tasks_at(step - self.steps))

    def task_index_at(self, step: int) -> int:
        tasks = self.tasks_at(step)
        if len(tasks) != 1:
            raise ValueError(f"step {step} trains {len(tasks)} tasks ({tasks}); use tasks_at")
        return self.task_names.index(tasks[0])

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """Batches of each task in steps ``[start, stop)`` (the base's ``counts`` after the pre-phase,
        or its ``tasks_at`` step by step when it has none)."""
        _check_range(start, stop)
        out = {n: 0 for n in self.task_names}
        lo, hi = min(start, self.steps), min(stop, self.steps)
        k = len(self.tasks_first)
        for i, name in enumerate(self.tasks_first):  # steps s in [lo, hi) with s % k == i
            out[name] += _below(hi, i, k) - _below(lo, i, k)
        b_lo, b_hi = max(start, self.steps) - self.steps, max(stop, self.steps) - self.steps
        if b_hi > b_lo:
            if callable(getattr(self.base, "counts", None)):
                for name, c in self.base.counts(b_lo, b_hi).items():
                    out[name] = out.get(name, 0) + int(c)
            else:
                for s in range(b_lo, b_hi):
                    for name in self.base.tasks_at(s):
                        out[name] = out.get(name, 0) + 1
        return out

    def state_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "tasks_first": list(self.tasks_first),
                "steps": self.steps, "base": self.base.state_dict()}

    def describe(self) -> str:
        return (f"{self.label}: {', '.join(self.tasks_first)} round-robin for {self.steps} steps, "
                f"then {self.base.describe()}")


def build_curriculum(kind: str, groups: dict[str, str], first_group: str, steps: int, base):
    """Wrap ``base`` in the pre-phase ``kind`` asks for.

    Args:
        kind: ``"none"`` (returns ``base`` itself), ``"curriculum"`` or ``"anti_curriculum"``.
        groups: task name -> group name (e.g. ``{"vqa": "G1", "refcoco": "G3", ...}``).
        first_group: the group trained first (curriculum: the fastest-converging group, G3 or G4
            by the paper's two accounts; anti-curriculum: the slowest, G1; see :data:`PAPER_GROUPS`).
        steps: length of the pre-phase in global steps.
        base: the schedule used after the pre-phase (its steps count from the pre-phase's end).

    The pre-phase tasks are the members of ``first_group``, in the base's task order when it has
    ``task_names``, else in ``groups`` order.
    """
    if kind not in CURRICULUM_KINDS:
        raise ValueError(f"unknown curriculum kind {kind!r}; choose one of {', '.join(CURRICULUM_KINDS)}")
    if kind == "none":
        return base
    base_names = getattr(base, "task_names", None)
    if base_names is not None:
        unknown = sorted(set(groups) - set(base_names))
        if unknown:
            raise ValueError(f"groups name task(s) {unknown} that the base schedule does not train "
                             f"(its tasks: {list(base_names)})")
    order = list(base_names) if base_names is not None else list(groups)
    first = [t for t in order if groups.get(t) == first_group]
    if not first:
        present = sorted({str(g) for g in groups.values()})
        raise ValueError(f"{kind}: group {first_group!r} has no tasks; groups present: {present}")
    return PrePhase(first, steps, base, label=kind)
