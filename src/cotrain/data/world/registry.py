"""What the config needs to know about a world task before its data exists: its inputs, its class
names, the head kind its data implies, its region feature size and its group — one lookup for the
three families of world tasks (image / video / audio in :mod:`.build`, vision-and-language in
:mod:`.vl.build`, text-only in :mod:`.text`)."""

from __future__ import annotations

from ..errors import DataError


def _families():
    from .build import CLASS_NAMES, WORLD_TASKS
    from .text import TEXT_TASKS, text_class_names
    from .vl.build import VL_TASKS, vl_class_names

    return WORLD_TASKS, CLASS_NAMES, VL_TASKS, vl_class_names, TEXT_TASKS, text_class_names


def world_task_names() -> list[str]:
    single, _, vl, _, text, _ = _families()
    return sorted(single) + sorted(vl) + sorted(text)


def _unknown(name: str) -> DataError:
    return DataError(f"unknown world task {name!r}; available: {world_task_names()}")


def world_task_inputs(name: str) -> tuple[str, ...]:
    """``(modality,)`` for image / video / audio tasks, ``("regions", "text")`` for V&L ones (their
    data also has pixels: ``inputs: [image, text]`` reads those), ``("text",)`` for text tasks."""
    single, _, vl, _, text, _ = _families()
    if name in single:
        return (single[name],)
    if name in vl:
        return ("regions", "text")
    if name in text:
        return ("text",)
    raise _unknown(name)


def world_class_names(name: str) -> list[str]:
    single, classes, vl, vl_names, text, text_names = _families()
    if name in single:
        return list(classes[name])
    if name in vl:
        return vl_names(name)
    if name in text:
        return text_names(name)
    raise _unknown(name)


def world_task_info(name: str) -> tuple[str | None, int | None, str | None]:
    """``(head kind the data implies or None, region feature size or None, group or None)``."""
    single, _, vl, _, text, _ = _families()
    if name in vl:
        from .vl.regions import REGION_DIM

        return vl[name].head_type, REGION_DIM, vl[name].group
    from .build import TASK_META

    if name in TASK_META:  # detect: its data is for a detection head
        return TASK_META[name]().get("head_type"), None, None
    if name in single or name in text:
        return None, None, None
    raise _unknown(name)


__all__ = ["world_class_names", "world_task_info", "world_task_inputs", "world_task_names"]
