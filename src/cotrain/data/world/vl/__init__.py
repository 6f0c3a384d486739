"""The vision-and-language tasks of the procedural world (12-in-1's four groups, and pretraining).

Public API::

    from cotrain.data.world.vl import VL_TASKS, build_vl_world_task, scene_for_vl_example, vl_scene
    from cotrain.data.world.vl import REGION_DIM, VQA_ANSWERS, GQA_ANSWERS, normalize_answer

``VL_TASKS`` maps a task name to its :class:`VLTask` (group G1-G4, head type, scene pool):
G1 ``vqa``, ``vgqa``, ``gqa``; G2 ``coco-ir``, ``flickr-ir``; G3 ``refcoco``, ``refcoco+``,
``refcocog``, ``pointing``, ``guesswhat``; G4 ``nlvr``, ``snli-ve``; and the caption pretraining
tasks ``captions``, ``captions-shift`` (group ``pretrain``, :mod:`.captions`). Arrays follow
``docs/vl-contract.md``; see :mod:`.build` for the extra keys and :mod:`.scenes` for the shared scene
pools and splits.
"""

from .build import (
    VL_GENERATOR_VERSION,
    VL_TASKS,
    VLTask,
    build_vl_world_task,
    scene_for_vl_example,
    task_stream,
    vl_class_names,
    vl_scene,
)
from .answers import GQA_ANSWERS, VQA_ANSWERS, normalize_answer
from .regions import REGION_DIM
from .captions import CLASS_NAMES as REGION_CLASS_NAMES
from .scenes import CC_BASE, CC_SHIFT_BASE, FLICKR_BASE, POOLS, SceneStream, pool_scene, pool_seed
from .verify import NLVR_CLASSES, SNLI_VE_CLASSES

__all__ = [
    "VL_GENERATOR_VERSION",
    "VL_TASKS",
    "VLTask",
    "build_vl_world_task",
    "scene_for_vl_example",
    "task_stream",
    "vl_class_names",
    "vl_scene",
    "GQA_ANSWERS",
    "VQA_ANSWERS",
    "normalize_answer",
    "REGION_DIM",
    "REGION_CLASS_NAMES",
    "CC_BASE",
    "CC_SHIFT_BASE",
    "FLICKR_BASE",
    "POOLS",
    "SceneStream",
    "pool_scene",
    "pool_seed",
    "NLVR_CLASSES",
    "SNLI_VE_CLASSES",
]
