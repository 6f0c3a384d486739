"""The 12-in-1 vision-and-language model: text + visual encoders → a two-stream (co-attention) or
single-stream trunk with a task token → one head per head key.

    batch["text"] ─▶ TextEncoder ─┐
    batch["regions"/"boxes"/"region_mask"] ─▶ RegionEncoder ─┤─▶ trunk(·, task id) ─▶ heads[spec.head]
      (or batch["image"] ─▶ ImageEncoder, its class token as IMG)

Same interface as :class:`cotrain.model.CotrainModel` (``forward``, ``losses``, ``predict``,
``features``, ``spec``, ``head``, ``parameter_counts``, ``tasks``). A batch whose visual arrays
carry a view dimension K (NLVR2: 2, retrieval training: 4) is run as ``B·K`` trunk passes with the
text repeated, and the outputs are regrouped ``[B, K, ...]`` for the head (docs/vl-contract.md).
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.config import ModelConfig
from cotrain.heads.refexp import RefExpHead
from cotrain.heads.retrieval import RetrievalHead
from cotrain.heads.verify import NLVRHead, SNLIVEHead
from cotrain.heads.vqa import VQAHead
from cotrain.model import TaskLookup, TaskSpec, group_by_head, with_total
from cotrain.encoders.image import ImageEncoder
from cotrain.encoders.regions import RegionEncoder
from cotrain.encoders.text import TextEncoder
from cotrain.trunks.coattention import CoAttentionTrunk
from cotrain.trunks.single_stream import SingleStreamTrunk
from cotrain.trunks.vl_output import VLOutput

VL_HEAD_TYPES = ("vqa", "retrieval", "refexp", "nlvr", "snli-ve")
_CLASSIFIER_TYPES = ("vqa", "nlvr", "snli-ve")  # heads whose output size is the task's num_classes


def build_vl_head(
    head_type: str, dim: int, num_classes: int, hidden: int | None = None, dropout: float = 0.0
) -> nn.Module:
    """The head for ``head_type`` (one of :data:`VL_HEAD_TYPES`)."""
    if head_type == "vqa":
        return VQAHead(dim, num_classes, hidden, dropout)
    if head_type == "retrieval":
        return RetrievalHead(dim, dropout)
    if head_type == "refexp":
        return RefExpHead(dim, dropout)
    if head_type == "nlvr":
        return NLVRHead(dim, num_classes, hidden, dropout)
    if head_type == "snli-ve":
        return SNLIVEHead(dim, num_classes, hidden, dropout)
    raise ValueError(f"unknown V&L head type {head_type!r}; known: {list(VL_HEAD_TYPES)}")


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class VLModel(TaskLookup, nn.Module):
    """``VLModel(cfg, tasks, vocab_size)``; every task has ``modality == "vl"`` and a ``head_type``.

    Tasks with the same ``spec.head`` share one head and must agree on its type (and, for the
    classifier heads vqa / nlvr / snli-ve, on ``num_classes``). Task token ids follow
    ``cfg.vl.task_tokens``: ``dataset`` one per task (in task order), ``head`` one per head key
    (in order of first use), ``none`` no task token.
    """

    def __init__(self, cfg: ModelConfig, tasks: list[TaskSpec], vocab_size: int | None) -> None:
        super().__init__()
        if cfg.trunk not in ("coattention", "single_stream"):
            raise ValueError(f"VLModel needs model.trunk 'coattention' or 'single_stream', got {cfg.trunk!r}")
        if not tasks:
            raise ValueError("a model needs at least one task")
        if vocab_size is None:
            raise ValueError(f"V&L tasks {[s.name for s in tasks]} need vocab_size to build the text encoder")
        self.cfg = cfg
        self.visual = cfg.vl.visual
        self.tasks: dict[str, TaskSpec] = {}
        for spec in tasks:
            if spec.name in self.tasks:
                raise ValueError(f"task {spec.name!r} is given twice")
            if spec.modality != "vl":
                raise ValueError(
                    f"task {spec.name!r} has modality {spec.modality!r}; a {cfg.trunk} model takes 'vl' tasks only"
                )
            if spec.head_type not in VL_HEAD_TYPES:
                raise ValueError(
                    f"task {spec.name!r} has head_type {spec.head_type!r}; V&L tasks need one of {list(VL_HEAD_TYPES)} "
                    "(TaskData.meta['head_type'])"
                )
            self.tasks[spec.name] = spec

        self.task_index, num_tokens = self._task_token_ids(cfg.vl.task_tokens, tasks)
        encoders = {"text": TextEncoder(cfg.encoders.text, cfg.dim, vocab_size, cfg.dropout)}
        if self.visual == "regions":
            feat_dim = self._region_dim(cfg, tasks)
            encoders["regions"] = RegionEncoder(cfg.encoders.regions, feat_dim, cfg.dim, cfg.dropout)
        else:
            encoders["image"] = ImageEncoder(cfg.encoders.image, cfg.dim, cfg.dropout)
        self.encoders = nn.ModuleDict(encoders)
        common = dict(num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
                      drop_path=cfg.drop_path, num_task_tokens=num_tokens)
        if cfg.trunk == "coattention":
            self.trunk = CoAttentionTrunk(cfg.dim, cfg.vl.v_layers, cfg.vl.t_layers, **common)
        else:
            self.trunk = SingleStreamTrunk(cfg.dim, cfg.vl.t_layers, **common)
        self.heads = nn.ModuleDict()
        for key, (head_type, num_classes, hidden, dropout) in self._resolve_heads(cfg, tasks).items():
            try:
                self.heads[key] = build_vl_head(head_type, cfg.dim, num_classes, hidden, dropout)
            except KeyError as err:  # ModuleDict refuses "", "a.b" and names like "update"
                users = [s.name for s in tasks if s.head == key]
                raise ValueError(f"head key {key!r} (tasks {users}) cannot be used as a module name: {err}") from None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _task_token_ids(mode: str, tasks: list[TaskSpec]) -> tuple[dict[str, int], int]:
        if mode == "none":
            return {}, 0
        if mode == "dataset":
            return {s.name: i for i, s in enumerate(tasks)}, len(tasks)
        keys = list(dict.fromkeys(s.head for s in tasks))
        return {s.name: keys.index(s.head) for s in tasks}, len(keys)

    @staticmethod
    def _region_dim(cfg: ModelConfig, tasks: list[TaskSpec]) -> int:
        given = cfg.encoders.regions.feature_dim
        dims = {s.name: s.region_dim for s in tasks if s.region_dim is not None}
        if given is not None:
            wrong = {n: d for n, d in dims.items() if d != given}
            if wrong:
                raise ValueError(
                    f"model.encoders.regions.feature_dim is {given} but tasks have region features of size {wrong}"
                )
            return given
        if not dims:
            raise ValueError("the region feature size is unknown: set model.encoders.regions.feature_dim "
                             "or give the tasks a region_dim (TaskData.meta['region_dim'])")
        if len(set(dims.values())) > 1:
            raise ValueError(f"tasks have region features of different sizes {dims}; one region encoder needs one size")
        return next(iter(dims.values()))

    @staticmethod
    def _resolve_heads(cfg: ModelConfig, tasks: list[TaskSpec]) -> dict[str, tuple[str, int, int | None, float]]:
        by_head = group_by_head(cfg, tasks)
        resolved = {}
        for key, specs in by_head.items():
            names = [s.name for s in specs]
            types = {s.head_type for s in specs}
            if len(types) > 1:
                detail = ", ".join(f"{s.name}: {s.head_type}" for s in specs)
                raise ValueError(f"tasks {names} share head {key!r} but differ in head type ({detail})")
            head_type = types.pop()
            classes = {s.num_classes for s in specs}
            if head_type in _CLASSIFIER_TYPES and len(classes) > 1:
                detail = ", ".join(f"{s.name}: {s.num_classes}" for s in specs)
                raise ValueError(f"tasks {names} share head {key!r} but differ in number of classes ({detail})")
            num_classes = max(classes)
            head_cfg = cfg.heads.get(key)
            hidden, dropout = None, 0.0
            if head_cfg is not None:  # only hidden, dropout and num_classes apply to V&L heads
                if head_type in _CLASSIFIER_TYPES and head_cfg.num_classes not in (None, num_classes):
                    raise ValueError(f"model.heads.{key}.num_classes is {head_cfg.num_classes} but the data of "
                                     f"tasks {names} has {num_classes} classes")
                hidden, dropout = head_cfg.hidden, head_cfg.dropout
            resolved[key] = (head_type, num_classes, hidden, dropout)
        return resolved

    # ------------------------------------------------------------------ running
    def task_token_id(self, task: str) -> int | None:
        """The task token id of ``task`` (None with ``task_tokens: none``)."""
        self.spec(task)
        return self.task_index.get(task)

    def _task_ids(self, task: str, n: int, device: torch.device) -> torch.Tensor | None:
        tid = self.task_token_id(task)
        return None if tid is None else torch.full((n,), tid, dtype=torch.long, device=device)

    def encode_visual(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Visual tokens ``[B·K, 1+R, D]``, mask ``[B·K, 1+R]`` and K (0: no view dimension)."""
        if self.visual == "regions":
            missing = [k for k in ("regions", "boxes") if k not in batch]
            if missing:
                raise KeyError(
                    f"a region-based model reads batch['regions'] and ['boxes']; missing {missing}; "
                    f"the batch has {sorted(batch)}"
                )
            feats, boxes, mask = batch["regions"], batch["boxes"], batch.get("region_mask")
            if feats.dim() not in (3, 4):
                raise ValueError(f"regions must be [B, R, F] or [B, K, R, F], got {tuple(feats.shape)}")
            views = feats.shape[1] if feats.dim() == 4 else 0
            if views:
                if boxes.dim() != 4 or (mask is not None and mask.dim() != 3):
                    raise ValueError(f"with regions [B, K, R, F] boxes must be [B, K, R, 4] and region_mask [B, K, R]; "
                                     f"got {tuple(boxes.shape)} and {None if mask is None else tuple(mask.shape)}")
                feats, boxes = feats.flatten(0, 1), boxes.flatten(0, 1)
                mask = None if mask is None else mask.flatten(0, 1)
            enc = self.encoders["regions"]
            tokens, vmask = enc(feats.to(enc.feat_proj.weight.dtype), boxes, mask)
            return tokens, vmask, views
        if "image" not in batch:
            raise KeyError(
                f"a pixel-based model (model.vl.visual: pixels) reads batch['image']; the batch has {sorted(batch)}"
            )
        image = batch["image"]
        if image.dim() not in (4, 5):
            raise ValueError(f"image must be [B, C, H, W] or [B, K, C, H, W], got {tuple(image.shape)}")
        views = image.shape[1] if image.dim() == 5 else 0
        tokens, _ = self.encoders["image"](image.flatten(0, 1) if views else image)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device), views

    def encode(self, batch: dict[str, torch.Tensor], task: str) -> VLOutput:
        """Trunk output for ``batch``; with K views regrouped ``[B, K, ...]`` (``out.views = K``)."""
        self.spec(task)
        if "text" not in batch:
            raise KeyError(f"task {task!r} reads batch['text']; the batch has {sorted(batch)}")
        v, v_mask, views = self.encode_visual(batch)
        t, t_mask = self.encoders["text"](batch["text"])
        if views:
            t, t_mask = t.repeat_interleave(views, 0), t_mask.repeat_interleave(views, 0)
        if t.shape[0] != v.shape[0]:
            n_vis = v.shape[0] // max(views, 1)
            raise ValueError(f"task {task!r}: {batch['text'].shape[0]} texts but {n_vis} visual inputs")
        out = self.trunk(v, v_mask, t, t_mask, self._task_ids(task, t.shape[0], t.device))
        return out.regroup(views) if views else out

    def forward(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The head's logits / scores for ``batch`` (shape per head type, see cotrain.heads)."""
        return self.head(task)(self.encode(batch, task))

    def losses(self, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
        """The head's loss terms plus ``"loss"`` = loss_weight · their sum."""
        logits = self(batch, task)
        spec = self.tasks[task]
        return with_total(self.heads[spec.head].losses(logits, batch), spec.loss_weight)

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """Probabilities / scores (the head's ``predict``) — no gradient."""
        return self.head(task).predict(self(batch, task))

    def features(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """``h_IMG ⊙ h_CLS``: ``[B, D]`` (``[B, K, D]`` with views), for linear probes."""
        return self.encode(batch, task).joint()

    @torch.no_grad()
    def score_pairs(
        self, text: torch.Tensor, visual: dict[str, torch.Tensor], task: str, chunk_size: int = 256
    ) -> torch.Tensor:
        """Alignment scores ``[Nt, Ni]`` of every caption ``text [Nt, L]`` with every image of
        ``visual`` (``regions [Ni, R, F]`` / ``boxes`` / ``region_mask``, or ``image [Ni, C, H, W]``),
        for retrieval evaluation. Each stream is encoded once; the trunk runs on ``chunk_size``
        pairs at a time."""
        spec = self.spec(task)
        if spec.head_type != "retrieval":
            raise ValueError(f"score_pairs needs a retrieval task; {task!r} has head type {spec.head_type!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        v, v_mask, views = self.encode_visual(visual)
        if views:
            raise ValueError("score_pairs takes a pool of single images (no view dimension)")
        t, t_mask = self.encoders["text"](text)
        nt, ni = t.shape[0], v.shape[0]
        scores = torch.empty(nt * ni, dtype=t.dtype, device=t.device)
        head = self.heads[spec.head]
        for start in range(0, nt * ni, chunk_size):
            idx = torch.arange(start, min(start + chunk_size, nt * ni), device=t.device)
            ti, vi = idx // ni, idx % ni
            out = self.trunk(v[vi], v_mask[vi], t[ti], t_mask[ti], self._task_ids(task, idx.numel(), t.device))
            scores[start : start + idx.numel()] = head(out)
        return scores.view(nt, ni)

    def parameter_counts(self) -> dict[str, int]:
        task_tokens = _count(self.trunk.task_tokens)
        counts = {
            "encoders": _count(self.encoders),
            "trunk": _count(self.trunk) - task_tokens,
            "task_tokens": task_tokens,
            "heads": _count(self.heads),
        }
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
