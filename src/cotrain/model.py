"""The PolyViT-style co-training model: per-modality encoders → one shared trunk → per-head-key heads.

    batch[modality] ──▶ encoders[modality] ──▶ trunk(·, mask, modality) ──▶ heads[task.head] ──▶ logits

Only the encoders of modalities some task reads are built. Tasks naming the same head key share
one head (and must agree on its number of classes and on multi-label-ness).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cotrain.config import MODALITIES, HeadConfig, ModelConfig
from cotrain.heads import build_head
from cotrain.modalities import build_encoder
from cotrain.trunks.shared import SharedTrunk


@dataclass
class TaskSpec:
    """What the model needs to know about a task."""

    name: str
    modality: str  # the batch key the task reads: image | video | audio | text
    head: str  # head key; tasks with the same key share a head
    num_classes: int
    multilabel: bool = False
    loss_weight: float = 1.0
    # vision-and-language tasks only (modality "vl"; see docs/vl-contract.md)
    head_type: str | None = None  # vqa | retrieval | refexp | nlvr | snli-ve
    region_dim: int | None = None  # F of the region features
    group: str | None = None  # the task group (12-in-1's G1..G4)

    @classmethod
    def from_task(cls, task_cfg, data) -> "TaskSpec":
        """From a :class:`cotrain.config.TaskConfig` and its :class:`cotrain.data.arrays.TaskData`."""
        return cls(
            name=task_cfg.name,
            modality=data.modality,
            head=task_cfg.head_key,
            num_classes=data.num_classes,
            multilabel=data.multilabel,
            loss_weight=task_cfg.loss_weight,
        )


def with_total(terms: dict[str, torch.Tensor], loss_weight: float) -> dict[str, torch.Tensor]:
    """``terms`` plus ``"loss"`` = ``loss_weight`` · the sum of the terms (the dict is returned)."""
    values = list(terms.values())
    total = values[0]
    for v in values[1:]:
        total = total + v
    terms["loss"] = total * loss_weight if loss_weight != 1.0 else total
    return terms


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def group_by_head(cfg: ModelConfig, tasks: list[TaskSpec]) -> dict[str, list[TaskSpec]]:
    """Tasks per head key, in order of first use; a ``model.heads`` entry no task uses is an error."""
    by_head: dict[str, list[TaskSpec]] = {}
    for spec in tasks:
        by_head.setdefault(spec.head, []).append(spec)
    unused = sorted(set(cfg.heads) - set(by_head))
    if unused:
        raise ValueError(f"model.heads has entries no task uses: {unused}; task heads: {sorted(by_head)}")
    return by_head


class TaskLookup:
    """``spec(task)`` and ``head(task)`` of a model with ``tasks`` (name -> TaskSpec) and ``heads``."""

    tasks: dict[str, TaskSpec]
    heads: nn.ModuleDict

    def spec(self, task: str) -> TaskSpec:
        try:
            return self.tasks[task]
        except KeyError:
            raise KeyError(f"no task named {task!r}; tasks: {list(self.tasks)}") from None

    def head(self, task: str) -> nn.Module:
        return self.heads[self.spec(task).head]


class CotrainModel(TaskLookup, nn.Module):
    def __init__(self, cfg: ModelConfig, tasks: list[TaskSpec], vocab_size: int | None = None) -> None:
        super().__init__()
        if cfg.trunk != "shared":
            raise ValueError(f"model.trunk {cfg.trunk!r} is not available; use 'shared'")
        if not tasks:
            raise ValueError("a model needs at least one task")
        self.cfg = cfg
        self.tasks: dict[str, TaskSpec] = {}
        for spec in tasks:
            if spec.name in self.tasks:
                raise ValueError(f"task {spec.name!r} is given twice")
            if spec.modality not in MODALITIES:
                raise ValueError(f"task {spec.name!r} reads modality {spec.modality!r}; known: {list(MODALITIES)}")
            if spec.num_classes < 1:
                raise ValueError(f"task {spec.name!r} has {spec.num_classes} classes; need at least 1")
            self.tasks[spec.name] = spec

        head_cfgs, head_classes = self._resolve_heads(cfg, tasks)
        used = [m for m in MODALITIES if any(s.modality == m for s in tasks)]
        if "text" in used and vocab_size is None:
            text_tasks = [s.name for s in tasks if s.modality == "text"]
            raise ValueError(f"text tasks {text_tasks} need vocab_size to build the text encoder")

        self.encoders = nn.ModuleDict(
            {
                m: build_encoder(m, getattr(cfg.encoders, m), cfg.dim, vocab_size=vocab_size, dropout=cfg.dropout)
                for m in used
            }
        )
        self.trunk = SharedTrunk(
            cfg.dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.drop_path, cfg.l_adapt, used
        )
        self.heads = nn.ModuleDict()
        for key in head_cfgs:
            try:
                self.heads[key] = build_head(head_cfgs[key], cfg.dim, head_classes[key])
            except KeyError as err:  # ModuleDict refuses "", "a.b" and names like "update"
                users = [s.name for s in tasks if s.head == key]
                raise ValueError(f"head key {key!r} (tasks {users}) cannot be used as a module name: {err}") from None

    @staticmethod
    def _resolve_heads(cfg: ModelConfig, tasks: list[TaskSpec]) -> tuple[dict[str, HeadConfig], dict[str, int]]:
        by_head = group_by_head(cfg, tasks)
        head_cfgs: dict[str, HeadConfig] = {}
        head_classes: dict[str, int] = {}
        for key, specs in by_head.items():
            names = [s.name for s in specs]
            classes = {s.num_classes for s in specs}
            if len(classes) > 1:
                detail = ", ".join(f"{s.name}: {s.num_classes}" for s in specs)
                raise ValueError(f"tasks {names} share head {key!r} but differ in number of classes ({detail})")
            multilabel = {s.multilabel for s in specs}
            if len(multilabel) > 1:
                raise ValueError(f"tasks {names} share head {key!r} but not all of them are multi-label")
            num_classes, is_multilabel = classes.pop(), multilabel.pop()
            head_cfg = cfg.heads.get(key)
            if head_cfg is None:
                head_cfg = HeadConfig(type="multilabel" if is_multilabel else "classify")
            else:
                if head_cfg.num_classes is not None and head_cfg.num_classes != num_classes:
                    raise ValueError(
                        f"model.heads.{key}.num_classes is {head_cfg.num_classes} but the data of tasks "
                        f"{names} has {num_classes} classes"
                    )
                wanted = "multilabel" if is_multilabel else "classify"
                if head_cfg.type != wanted:
                    raise ValueError(
                        f"model.heads.{key}.type is {head_cfg.type!r} but tasks {names} are "
                        f"{'multi-label' if is_multilabel else 'single-label'}; use type {wanted!r}"
                    )
            head_cfgs[key] = head_cfg
            head_classes[key] = num_classes
        return head_cfgs, head_classes

    # ------------------------------------------------------------------ running
    def encode(self, batch: dict[str, torch.Tensor], task: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Trunk output ``[B, L, D]`` (after the final LayerNorm) and the token mask."""
        spec = self.spec(task)
        if spec.modality not in batch:
            raise KeyError(f"task {task!r} reads batch[{spec.modality!r}]; the batch has {sorted(batch)}")
        tokens, mask = self.encoders[spec.modality](batch[spec.modality])
        return self.trunk(tokens, mask, spec.modality), mask

    def forward(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """Logits ``[B, C]`` of ``task`` for ``batch[task's modality]``."""
        h, mask = self.encode(batch, task)
        return self.heads[self.tasks[task].head](h, mask)

    def losses(self, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
        """The head's loss terms on ``batch["label"]`` plus ``"loss"`` = loss_weight · their sum."""
        logits = self(batch, task)
        spec = self.tasks[task]
        if "label" not in batch:
            raise KeyError(f"task {task!r}: the batch has no 'label' (keys: {sorted(batch)})")
        return with_total(self.heads[spec.head].losses(logits, batch["label"]), spec.loss_weight)

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """Probabilities ``[B, C]`` (softmax or sigmoid) — no gradient."""
        return self.head(task).predict(self(batch, task))

    def features(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The class-token trunk representation ``[B, D]`` (after the final LayerNorm), for linear probes."""
        h, _ = self.encode(batch, task)
        return h[:, 0]

    def parameter_counts(self) -> dict[str, int]:
        adapt = _count(self.trunk.adapters)
        counts = {
            "encoders": _count(self.encoders),
            "trunk_shared": _count(self.trunk) - adapt,
            "trunk_adapt": adapt,
            "heads": _count(self.heads),
        }
        counts["total"] = _count(self)
        return counts


def build_model(cfg: ModelConfig, tasks: list[TaskSpec], vocab_size: int | None = None) -> nn.Module:
    """``model.trunk: shared`` → :class:`CotrainModel`; ``coattention`` / ``single_stream`` →
    :class:`cotrain.vl_model.VLModel` (the same interface)."""
    if cfg.trunk == "shared":
        return CotrainModel(cfg, tasks, vocab_size=vocab_size)
    from cotrain.vl_model import VLModel  # imports TaskSpec from this module

    return VLModel(cfg, tasks, vocab_size=vocab_size)
