"""The schema of a checkpoint's ``state.json``: which fields, of which JSON types, and its version.

``Trainer.state()`` writes every field below except ``optimizer``, which ``save_checkpoint`` adds
(AdamW's ``param_groups`` and per-parameter scalars; its tensors live in ``optimizer.safetensors``).
Reading checks the structure only: the top-level fields and their types, ``step`` >= 0 and each
``tasks`` entry naming its task. What the contents must agree with (the config's tasks, schedule,
hooks' settings) is checked by ``Trainer.restore``.

``version`` changes whenever the layout changes in a way an older reader would misread; a reader
accepts exactly its own ``STATE_VERSION`` and names both versions otherwise.
"""

from __future__ import annotations

from typing import Any

STATE_VERSION = 2  # 2: one model (tasks with inputs and head kinds), hook states

# field -> (accepted Python types of the parsed JSON value, the expectation in words)
STATE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "version": ((int,), "an integer"),
    "step": ((int,), "an integer >= 0"),
    "config": ((dict,), "an object"),
    "tasks": ((list,), "a list"),
    "class_names": ((dict,), "an object"),
    "sample_rate": ((dict,), "an object"),
    "schedule": ((dict,), "an object"),
    "iterators": ((dict,), "an object"),
    "hooks": ((dict,), "an object"),
    "task_steps": ((dict,), "an object"),
    "task_time": ((dict,), "an object"),
    "history": ((list,), "a list"),
    "optimizer": ((dict,), "an object"),
}
OPTIONAL_FIELDS = frozenset({"optimizer"})  # absent when a checkpoint was saved without an optimizer


def _found(value: Any) -> str:
    kind = type(value).__name__
    return f"{kind} {value!r}" if isinstance(value, (bool, int, float, str)) else kind


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(keys: list[str]) -> str:
    return f"field{'s' if len(keys) > 1 else ''} {', '.join(map(repr, keys))}"


def state_problem(state: Any) -> str | None:
    """What is wrong with a parsed ``state.json`` (one phrase, for ``f"{file}: {problem}"``), or None."""
    if not isinstance(state, dict):
        return f"expected a JSON object of checkpoint state (fields {', '.join(STATE_FIELDS)}), found a {type(state).__name__}"
    if "version" in state:
        version = state["version"]
        if not _is_int(version):
            return f"field 'version' must be an integer, found {_found(version)}"
        if version != STATE_VERSION:
            age = "newer" if version > STATE_VERSION else "older"
            return (f"checkpoint state version {version}, but this cotrain reads version {STATE_VERSION} "
                    f"(written by a{'n' if age == 'older' else ''} {age} cotrain)")
    missing = [f for f in STATE_FIELDS if f not in state and f not in OPTIONAL_FIELDS]
    if missing:
        return f"missing {_names(missing)}"
    unknown = [k for k in state if k not in STATE_FIELDS]
    if unknown:
        return f"unknown {_names(unknown)} (a checkpoint's state has {', '.join(STATE_FIELDS)})"
    for name, (types, expected) in STATE_FIELDS.items():
        if name not in state:
            continue
        value = state[name]
        ok = _is_int(value) if types == (int,) else isinstance(value, types)
        if name == "step":
            ok = ok and value >= 0
        if not ok:
            return f"field {name!r} must be {expected}, found {_found(value)}"
    for i, task in enumerate(state["tasks"]):
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            return f"field 'tasks[{i}]' must be an object with a string 'name', found {_found(task)}"
        if not isinstance(task.get("inputs"), list) or not isinstance(task.get("head_kind"), str):
            return f"field 'tasks[{i}]' must give the task's 'inputs' (a list) and 'head_kind', found {sorted(task)}"
    return None
