"""The task table: what the model needs to know about each task, resolved in ONE place.

A task (a row of ``tasks:`` in the config) reads a list of inputs — ``[image]``, ``[video]``,
``[audio]``, ``[text]``, ``[regions, text]``, ``[image, text]`` — declared by ``inputs:`` or, when
left out, the ones its source gives by default (:func:`default_inputs`). There is no "vision and
language" modality: a V&L task is a task that reads two inputs. Its head is a key of
``model.heads`` (tasks naming the same key share one head); the head's kind comes from
``model.heads.<key>.type`` or, when not set, from the data (the V&L sources say ``vqa``,
``retrieval``, ``refexp``, ``nlvr`` or ``snli-ve``; other data ``classify`` or ``multilabel``).
Its metric is ``metric:`` or the head kind's default (:data:`cotrain.heads.HEADS`).

:func:`make_spec` is the only constructor of a :class:`TaskSpec`; :func:`specs_from_data` builds
the table of an experiment from its loaded data, :func:`spec_from_dict` from a checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cotrain.config import VL_FORMAT_KINDS, ConfigError, ExperimentConfig, TaskConfig
from cotrain.encoders import INPUT_KINDS
from cotrain.heads import head_class

SOURCE_INPUTS = {
    "image_folder": ("image",),
    "audio_folder": ("audio",),
    "video_folder": ("video",),
    "text_tsv": ("text",),
    "coco_detection": ("image",),
    "glue": ("text",),
}


@dataclass
class TaskSpec:
    """One resolved row of the task table."""

    name: str
    inputs: tuple[str, ...]  # input kinds, in the order the trunk gets them
    head: str  # head key; tasks with the same key share a head
    head_kind: str  # a kind of cotrain.heads.HEADS
    num_classes: int  # output size of class-based heads (answers for vqa); 1 where it does not apply
    metric: str
    loss_weight: float = 1.0
    group: str | None = None  # the task group (12-in-1's G1..G4)
    region_dim: int | None = None  # F of the region features, for tasks reading regions
    queries: int | None = None  # decoder queries (trunk encoder_decoder); None: model.encoder_decoder.queries
    attribute_names: tuple[str, ...] | None = None  # detection: the objects' attribute classes (BUTD head)
    head_options: dict | None = None  # the task's own settings for its head's loss (Head.options_from), e.g. retrieval's

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        if self.attribute_names is not None:
            d["attribute_names"] = list(self.attribute_names)
        return d


def spec_from_dict(d: dict) -> TaskSpec:
    """A :class:`TaskSpec` from its :meth:`TaskSpec.to_dict` (a checkpoint's ``state.json``)."""
    known = {f.name for f in fields(TaskSpec)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"task spec has unknown fields {unknown}; known: {sorted(known)}")
    attrs = d.get("attribute_names")
    # fields added later (queries, attribute_names) keep their defaults in older checkpoints
    return TaskSpec(**{**d, "inputs": tuple(d["inputs"]), "attribute_names": None if attrs is None else tuple(attrs)})


def default_inputs(task: TaskConfig) -> tuple[str, ...]:
    """The inputs a task's source gives when the task does not list ``inputs`` (config only, no data)."""
    src = task.source
    if src.kind == "world":
        from cotrain.data.world import world_task_inputs

        return world_task_inputs(src.name)
    if src.kind in VL_FORMAT_KINDS:
        return ("regions", "text") if src.regions else ("image", "text")
    return SOURCE_INPUTS[src.kind]


def task_inputs(task: TaskConfig) -> tuple[str, ...]:
    """``inputs:`` as declared (checked), or the source's default."""
    if task.inputs is None:
        return default_inputs(task)
    inputs = tuple(task.inputs)
    unknown = [k for k in inputs if k not in INPUT_KINDS]
    if unknown:
        raise ConfigError(f"tasks[{task.name}].inputs: unknown input kind(s) {unknown}; known: {list(INPUT_KINDS)}")
    if len(set(inputs)) != len(inputs) or not inputs:
        raise ConfigError(f"tasks[{task.name}].inputs must list distinct input kinds, got {list(inputs)}")
    return inputs


def make_spec(task: TaskConfig, cfg: ExperimentConfig, *, num_classes: int, multilabel: bool = False,
              data_head: str | None = None, region_dim: int | None = None, group: str | None = None,
              attribute_names: list[str] | None = None) -> TaskSpec:
    """The one constructor of a :class:`TaskSpec`: ``data_head`` is the head kind the data implies
    (V&L sources), ``multilabel`` whether class targets are multi-label."""
    inputs = task_inputs(task)
    head_cfg = cfg.model.heads.get(task.head_key)
    implied = data_head or ("multilabel" if multilabel else "classify")
    kind = head_cfg.type if head_cfg is not None and head_cfg.type is not None else implied
    if data_head is not None and kind != data_head:
        raise ConfigError(f"model.heads.{task.head_key}.type is {kind!r} but task {task.name!r}'s data is for a "
                          f"{data_head!r} head")
    if data_head is None and kind not in ("classify", "multilabel"):
        raise ConfigError(f"model.heads.{task.head_key}.type is {kind!r} but task {task.name!r}'s data has class "
                          f"labels; use type {implied!r}")
    if data_head is None and kind != implied:
        raise ConfigError(f"model.heads.{task.head_key}.type is {kind!r} but task {task.name!r} is "
                          f"{'multi-label' if multilabel else 'single-label'}; use type {implied!r}")
    cls = head_class(kind)
    if cls.needs is not None and cls.needs not in inputs:
        raise ConfigError(f"task {task.name!r}: a {kind} head needs the {cls.needs!r} input; the task reads {list(inputs)}")
    section = getattr(task, cls.options_from) if cls.options_from else None
    options = {k: getattr(section, k) for k in cls.option_keys} if section is not None else None
    return TaskSpec(
        name=task.name, inputs=inputs, head=task.head_key, head_kind=kind, num_classes=int(num_classes),
        metric=task.metric or cls.metric, loss_weight=task.loss_weight, group=task.group or group,
        region_dim=region_dim if "regions" in inputs else None,
        queries=(task.queries or cfg.model.encoder_decoder.queries) if cfg.model.trunk == "encoder_decoder" else None,
        attribute_names=tuple(attribute_names) if attribute_names and kind == "detect" else None,
        head_options=options,
    )


def specs_from_data(cfg: ExperimentConfig, data: dict) -> list[TaskSpec]:
    """The task table of an experiment whose data (``{task: TaskData}``) is loaded."""
    out = []
    for t in cfg.tasks:
        d = data[t.name]
        missing = [k for k in task_inputs(t) if k not in d.inputs]
        if missing:
            raise ConfigError(f"task {t.name!r} reads {list(task_inputs(t))} but its data gives {list(d.inputs)}")
        out.append(make_spec(t, cfg, num_classes=d.num_classes, multilabel=d.multilabel,
                             data_head=d.meta.get("head_type"), region_dim=d.meta.get("region_dim"),
                             group=d.meta.get("group"), attribute_names=d.meta.get("attribute_names")))
    return out


__all__ = ["TaskSpec", "default_inputs", "make_spec", "spec_from_dict", "specs_from_data", "task_inputs"]
