"""The procedural world: scenes, videos and sounds generated from ``(seed, index)``.

Public API::

    from cotrain.data.world import WORLD_TASKS, build_world_task, espeak_available
    from cotrain.data.world import make_scene, render_scene, Scene, SceneObject

Tasks (``WORLD_TASKS`` maps name -> modality): ``shapes``, ``count``, ``digits``, ``detect`` (image;
``detect`` has the detection layout of :mod:`.detect`); ``motion``, ``moving-digits`` (video); ``sounds``,
``spoken-digits`` (audio, the latter needs espeak-ng). The vision-and-language tasks live in :mod:`.vl`,
the text-only ones (``text-nli``, ``text-qnli``, ``text-para``) in :mod:`.text`.
"""

from .build import CLASS_NAMES, GENERATOR_VERSION, WORLD_TASKS, build_world_task, cache_key, espeak_available
from .common import SPLIT_OFFSETS, balanced_labels, task_seed
from .images import scene_for_example
from .registry import world_class_names, world_task_info, world_task_inputs, world_task_names
from .render import render_scene, render_scenes, shape_mask
from .scene import COLOUR_NAMES, COLOURS, SHAPES, SIZES, Background, Scene, SceneObject, make_scene
from .video import MOTIONS, motion_clip, motion_for_example, render_frames

__all__ = [
    "WORLD_TASKS",
    "world_class_names",
    "world_task_info",
    "world_task_inputs",
    "world_task_names",
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "build_world_task",
    "cache_key",
    "espeak_available",
    "SPLIT_OFFSETS",
    "balanced_labels",
    "task_seed",
    "scene_for_example",
    "render_scene",
    "render_scenes",
    "shape_mask",
    "SHAPES",
    "COLOURS",
    "COLOUR_NAMES",
    "SIZES",
    "Background",
    "Scene",
    "SceneObject",
    "make_scene",
    "MOTIONS",
    "motion_clip",
    "motion_for_example",
    "render_frames",
]
