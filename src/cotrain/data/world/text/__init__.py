"""Text-only tasks of the procedural world (GLUE-like): scenes described in words.

Public API::

    from cotrain.data.world.text import TEXT_TASKS, build_text_world_task, text_class_names, text_scene

``TEXT_TASKS`` maps a task name to its :class:`TextTask`: ``text-nli`` (premise = a scene description,
hypothesis = a statement about the scene; entailment / neutral / contradiction, see :mod:`.nli`),
``text-qnli`` (a question and a sentence about a scene: does the sentence answer it? entailment /
not_entailment, see :mod:`.qnli`) and ``text-para`` (two descriptions of a scene: do they state the
same facts? not_paraphrase / paraphrase, see :mod:`.para`).
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
from .para import PARA_CLASSES
from .qnli import QNLI_CLASSES

__all__ = [
    "TEXT_GENERATOR_VERSION",
    "TEXT_TASKS",
    "TextTask",
    "build_text_world_task",
    "text_class_names",
    "text_scene",
    "text_stream",
    "NLI_CLASSES",
    "PARA_CLASSES",
    "QNLI_CLASSES",
    "SEPARATOR",
]
