"""Text-only tasks of the procedural world (GLUE-like): scenes described in words.

Public API::

    from cotrain.data.world.text import TEXT_TASKS, build_text_world_task, text_class_names, text_scene

``TEXT_TASKS`` maps a task name to its :class:`TextTask`: ``text-nli`` (premise = a scene description,
hypothesis = a statement about the scene; entailment / neutral / contradiction, see :mod:`.nli`).
"""

from .build import (
    TEXT_GENERATOR_VERSION,
    TEXT_TASKS,
    TextTask,
    build_text_world_task,
    text_class_names,
    text_scene,
    text_stream,
)
from .nli import NLI_CLASSES, SEPARATOR

__all__ = [
    "TEXT_GENERATOR_VERSION",
    "TEXT_TASKS",
    "TextTask",
    "build_text_world_task",
    "text_class_names",
    "text_scene",
    "text_stream",
    "NLI_CLASSES",
    "SEPARATOR",
]
