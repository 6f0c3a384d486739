"""The one model: an encoder per input kind some task reads → one trunk → one head per head key.

    batch ──▶ encoders[kind] for each of the task's inputs ──▶ trunk(streams, task token) ──▶ heads[task.head]

Every task family runs on it: PolyViT's image / video / audio classification (``trunk: shared``),
12-in-1's vision-and-language tasks (``coattention``, or ``single_stream``), UniT's per-input
encoders and task-query decoder (``encoder_decoder``), text-only tasks, and any mix of them in one
network. The trunk gets the task's name (``task=``) besides its task-token ids. Encoders come from :data:`cotrain.encoders.ENCODERS`, the trunk from
:data:`cotrain.trunks.TRUNKS`, heads from :data:`cotrain.heads.HEADS`.

A batch whose non-text arrays carry a view axis ``[B, K, ...]`` (NLVR2: K = 2; retrieval training:
K = 1 + negatives + random negatives) runs ``B·K`` trunk passes with the text repeated, and the
trunk output is regrouped ``[B, K, ...]`` for the head.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.config import ConfigError, HeadConfig, ModelConfig
from cotrain.encoders import build_encoder, encode, entry, views_of
from cotrain.errors import InputError
from cotrain.heads import build_head, head_class
from cotrain.heads.common import STAT_PREFIX, single_key
from cotrain.pair_scoring import PairScorer
from cotrain.tasks import TaskSpec
from cotrain.trunks import build_trunk
from cotrain.trunks.output import Tokens, TrunkOutput


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def task_token_ids(mode: str, tasks: list[TaskSpec]) -> tuple[dict[str, int], int]:
    """Task token id per task and the number of tokens: ``dataset`` one per task (task order),
    ``head`` one per head key (order of first use), ``none`` none."""
    if mode == "none":
        return {}, 0
    if mode == "dataset":
        return {s.name: i for i, s in enumerate(tasks)}, len(tasks)
    if mode == "head":
        keys = list(dict.fromkeys(s.head for s in tasks))
        return {s.name: keys.index(s.head) for s in tasks}, len(keys)
    raise ConfigError(f"unknown model.task_tokens {mode!r}; use dataset, head or none")


def resolve_heads(cfg: ModelConfig, tasks: list[TaskSpec]) -> dict[str, tuple[HeadConfig, int]]:
    """Per head key: its config (declared, or the default of its kind) and its output size. Tasks
    sharing a key must agree on the head kind and, for class-based heads, on the class count."""
    by_head: dict[str, list[TaskSpec]] = {}
    for spec in tasks:
        by_head.setdefault(spec.head, []).append(spec)
    unused = sorted(set(cfg.heads) - set(by_head))
    if unused:
        raise ConfigError(f"model.heads has entries no task uses: {unused}; task heads: {sorted(by_head)}")
    out = {}
    for key, specs in by_head.items():
        names = [s.name for s in specs]
        kinds = {s.head_kind for s in specs}
        if len(kinds) > 1:
            detail = ", ".join(f"{s.name}: {s.head_kind}" for s in specs)
            raise ConfigError(f"tasks {names} share head {key!r} but differ in head kind ({detail})")
        kind = kinds.pop()
        classes = {s.num_classes for s in specs}
        if head_class(kind).uses_classes and len(classes) > 1:
            detail = ", ".join(f"{s.name}: {s.num_classes}" for s in specs)
            raise ConfigError(f"tasks {names} share head {key!r} but differ in number of classes ({detail})")
        n = max(classes)
        head_cfg = cfg.heads.get(key) or HeadConfig(type=kind)
        if head_cfg.type is None:
            head_cfg = head_cfg.model_copy(update={"type": kind})
        attrs = {s.attribute_names for s in specs if s.attribute_names}
        if len(attrs) > 1:
            raise ConfigError(f"tasks {names} share head {key!r} but differ in attribute classes")
        if attrs:  # detection data with attributes sizes the attribute head (unless set by hand)
            given, found = head_cfg.num_attributes, len(next(iter(attrs)))
            if given and given != found:
                raise ConfigError(f"model.heads.{key}.num_attributes is {given} but the data of tasks {names} has "
                                  f"{found} attribute classes")
            head_cfg = head_cfg.model_copy(update={"num_attributes": found})
        if head_class(kind).uses_classes and head_cfg.num_classes not in (None, n):
            raise ConfigError(f"model.heads.{key}.num_classes is {head_cfg.num_classes} but the data of tasks "
                              f"{names} has {n} classes")
        out[key] = (head_cfg, n)
    return out


def _first_view(batch: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """``batch``'s arrays of input ``kind`` (view 0 of each when they carry a view axis ``[B, K, ...]``)."""
    cut = views_of(kind, batch) > 0
    return {k: batch[k][:, 0] if cut else batch[k] for k in entry(kind).keys if batch.get(k) is not None}


class Model(nn.Module):
    """``Model(cfg, tasks, vocab_size=None)``: ``cfg`` is ``model:`` of the config, ``tasks`` the
    task table (:mod:`cotrain.tasks`), ``vocab_size`` the tokenizer's (needed when a task reads text)."""

    def __init__(self, cfg: ModelConfig, tasks: list[TaskSpec], vocab_size: int | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ConfigError("a model needs at least one task")
        self.cfg = cfg
        self.tasks: dict[str, TaskSpec] = {}
        for spec in tasks:
            if spec.name in self.tasks:
                raise ConfigError(f"task {spec.name!r} is given twice")
            if head_class(spec.head_kind).uses_classes and spec.num_classes < 1:
                raise ConfigError(f"task {spec.name!r} has {spec.num_classes} classes; need at least 1")
            self.tasks[spec.name] = spec
        kinds = list(dict.fromkeys(k for s in tasks for k in s.inputs))
        region_dims = {s.name: s.region_dim for s in tasks if s.region_dim is not None}
        if len(set(region_dims.values())) > 1:
            raise ConfigError(f"tasks have region features of different sizes {region_dims}; one region encoder needs one size")
        region_dim = next(iter(region_dims.values()), None)
        self.task_index, num_tokens = task_token_ids(cfg.task_tokens, tasks)
        self.encoders = nn.ModuleDict({
            k: build_encoder(k, cfg.encoders, cfg.dim, vocab_size=vocab_size, region_dim=region_dim,
                             dropout=cfg.dropout, num_task_tokens=num_tokens)
            for k in kinds
        })
        self.trunk = build_trunk(cfg, kinds, [s.inputs for s in tasks], num_tokens, {s.name: s.queries for s in tasks})
        if not getattr(self.trunk, "supports_views", True):
            paired = [s.name for s in tasks if head_class(s.head_kind).views]
            if paired:
                raise ConfigError(f"tasks {paired} need several images per example (views), which model.trunk "
                                  f"{cfg.trunk} does not support; use trunk coattention, shared or single_stream")
        self.heads = nn.ModuleDict()
        for key, (head_cfg, n) in resolve_heads(cfg, tasks).items():
            try:
                self.heads[key] = build_head(head_cfg, cfg.dim, n)
                names = next((s.attribute_names for s in tasks if s.head == key and s.attribute_names), None)
                if names is not None:
                    self.heads[key].attribute_names = list(names)
            except KeyError as err:  # ModuleDict refuses "", "a.b" and names like "update"
                users = [s.name for s in tasks if s.head == key]
                raise ConfigError(f"head key {key!r} (tasks {users}) cannot be used as a module name: {err}") from None
        self._attach_heads(tasks)

    def _attach_heads(self, tasks: list[TaskSpec]) -> None:
        """Give heads built on other parts of the model what they need: a head with ``bind_task`` is
        shown each of its tasks (pretrain: the inputs its objectives read, the region size it
        regresses); one with ``tie_word_embeddings`` gets the text encoder's ``input_embeddings()``
        and the ids column of its first word state (pretrain: the MLM decoder's tied weight)."""
        for spec in tasks:
            bind = getattr(self.heads[spec.head], "bind_task", None)
            if bind is not None:
                bind(spec)
        for key, head in self.heads.items():
            if not hasattr(head, "tie_word_embeddings"):
                continue
            text = self.encoders["text"] if "text" in self.encoders else None
            if text is None or not hasattr(text, "input_embeddings"):
                users = [s.name for s in tasks if s.head == key]
                raise ConfigError(f"head {key!r} (tasks {users}) predicts words with the text encoder's embeddings; "
                                  "its tasks read no text")
            head.tie_word_embeddings(text.input_embeddings(), text.first_word_column)

    # ------------------------------------------------------------------ lookup
    def spec(self, task: str) -> TaskSpec:
        try:
            return self.tasks[task]
        except KeyError:
            raise InputError(f"no task named {task!r}; tasks: {list(self.tasks)}") from None

    def head(self, task: str) -> nn.Module:
        return self.heads[self.spec(task).head]

    def task_token_id(self, task: str) -> int | None:
        """The task token id of ``task`` (None with ``task_tokens: none``)."""
        self.spec(task)
        return self.task_index.get(task)

    def _task_ids(self, task: str, n: int, device: torch.device) -> torch.Tensor | None:
        tid = self.task_token_id(task)
        return None if tid is None else torch.full((n,), tid, dtype=torch.long, device=device)

    def _encoder_task_ids(self, task: str, kind: str, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``[B]`` task token ids of ``task`` for the encoder of ``kind`` when it ``takes_task_ids``
        (B = rows of its main batch key); None without a task token."""
        tid = self.task_index.get(task) if task else None
        main = batch.get(entry(kind).keys[0])
        if tid is None or main is None or not getattr(self.encoders[kind], "takes_task_ids", False):
            return None
        return torch.full((main.shape[0],), tid, dtype=torch.long, device=main.device)

    # ------------------------------------------------------------------ running
    def streams(self, batch: dict[str, torch.Tensor], inputs: tuple[str, ...], task: str = "") -> tuple[dict[str, Tokens], int]:
        """Each of ``inputs`` encoded (a view axis flattened, text repeated K times) and K. Encoders
        with ``takes_task_ids`` get ``task``'s task token ids (none for ``""`` or ``task_tokens: none``)."""
        missing = [k for k in inputs if k not in self.encoders]
        if missing:
            raise InputError(f"the model has no encoder for {missing} (it has {list(self.encoders)})")
        views = {k: views_of(k, batch) for k in inputs if k != "text"}
        if len(set(views.values())) > 1:
            raise InputError(f"task {task!r}: its inputs carry different view counts {views}")
        k_views = next(iter(views.values()), 0)
        streams = {}
        for kind in inputs:
            ids = self._encoder_task_ids(task, kind, batch)
            if kind == "text":
                s = encode(self.encoders[kind], kind, batch, task_ids=ids)
                if k_views:
                    s = Tokens(s.x.repeat_interleave(k_views, 0), s.mask.repeat_interleave(k_views, 0))
            else:
                s = encode(self.encoders[kind], kind, batch, k_views, task_ids=ids)
            streams[kind] = s
        sizes = {k: s.x.shape[0] for k, s in streams.items()}
        if len(set(sizes.values())) > 1:
            raise InputError(f"task {task!r}: its inputs have different batch sizes {sizes}")
        return streams, k_views

    def run_trunk(self, batch: dict[str, torch.Tensor], inputs: tuple[str, ...], task: str | None = None) -> TrunkOutput:
        """Encoders + trunk on ``inputs`` of ``batch``, with ``task``'s task token (none for None: the
        representation a held-out task is probed on). Regrouped ``[B, K, ...]`` with views."""
        streams, views = self.streams(batch, tuple(inputs), task or "")
        if views and not getattr(self.trunk, "supports_views", True):
            raise InputError(f"task {task!r}: the batch has a view axis (K = {views}), which model.trunk "
                             f"{self.cfg.trunk} does not support; give one image per example")
        first = next(iter(streams.values())).x
        ids = self._task_ids(task, first.shape[0], first.device) if task is not None else None
        out = self.trunk(streams, ids, task=task)
        return out.regroup(views) if views else out

    def encode(self, batch: dict[str, torch.Tensor], task: str) -> TrunkOutput:
        """The trunk output of ``task`` on ``batch`` (regrouped ``[B, K, ...]`` with views)."""
        return self.run_trunk(batch, self.spec(task).inputs, task)

    def forward(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The head's predictions (logits / scores; shape per head kind, see cotrain.heads)."""
        return self.head(task)(self.encode(batch, task))

    def losses(self, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
        """The head's loss terms plus ``"loss"`` = loss_weight · Σ head.loss_weights[term] · term;
        statistics (terms named ``stat_*``) are returned detached and are not in the sum.

        The task's ``head_options`` (e.g. a retrieval task's ``loss`` and ``temperature``) go to the
        head's ``losses`` as keyword arguments. Each input kind the head asks for in
        ``single_inputs`` is run alone through the trunk (:meth:`pooled_single`, view 0 of a view
        batch) and added as ``batch["single_<kind>"]`` ``[B, D]``; when the head's ``uses_joint`` is
        False the joint pass is skipped and its predictions are None (see :mod:`cotrain.heads.common`)."""
        spec = self.spec(task)
        head = self.heads[spec.head]
        options = spec.head_options or {}
        single = head.single_inputs(spec.inputs, **options)
        if single:
            batch = {**batch, **{single_key(k): self.pooled_single(_first_view(batch, k), task, k) for k in single}}
        terms = head.losses(self(batch, task) if head.uses_joint(**options) else None, batch, **options)
        total = head.weighted_total(terms)
        terms = {k: v.detach() if k.startswith(STAT_PREFIX) else v for k, v in terms.items()}
        terms["loss"] = total * spec.loss_weight if spec.loss_weight != 1.0 else total
        return terms

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """Probabilities / scores (the head's ``predict``) — no gradient."""
        return self.head(task).predict(self(batch, task))

    def pooled_single(self, batch: dict[str, torch.Tensor], task: str, kind: str) -> torch.Tensor:
        """Input ``kind`` of ``batch`` alone through the encoder and the trunk (with ``task``'s task
        token; the co-attention trunk then runs only that stream's layers), its first state:
        ``h_CLS`` for text, ``h_IMG`` for regions, the class token otherwise — ``[B, D]`` (``[B, K, D]``
        with a view axis). The single-stream representation of dual-encoder scoring (retrieval's
        contrastive loss and first-stage ranking)."""
        if kind not in self.spec(task).inputs:
            raise InputError(f"task {task!r} reads {list(self.spec(task).inputs)}, not {kind!r}")
        return self.run_trunk(batch, (kind,), task).pooled(kind)

    def features(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The pooled trunk representation (``TrunkOutput.joint``): ``[B, D]`` (``[B, K, D]`` with views),
        for linear probes."""
        return self.encode(batch, task).joint()

    @torch.no_grad()
    def score_pairs(self, text: dict[str, torch.Tensor], visual: dict[str, torch.Tensor], task: str,
                    chunk_size: int = 2048, bar=None) -> torch.Tensor:
        """Scores ``[Nt, Ni]`` of every caption of ``text`` (``{"text": [Nt, L]}``) with every image of
        ``visual`` (the task's other input, e.g. ``{"regions", "boxes", "region_mask"}`` ``[Ni, ...]``),
        for retrieval. Each caption and image is encoded once (with the co-attention trunk: run up to
        the first co-attention once); the rest of the trunk runs ``chunk_size`` pairs at a time
        (:class:`cotrain.pair_scoring.PairScorer`); ``bar``: a progress bar advanced per pair."""
        return PairScorer(self, task, text, visual, chunk_size).all_pairs(bar)

    def parameter_counts(self) -> dict[str, int]:
        """``encoders``, ``trunk`` (shared layers; the encoder–decoder trunk's per-input encoders and
        type embeddings), ``trunk_adapt`` (L_adapt layers), ``task_tokens`` (task tokens / embeddings),
        ``decoder`` (the encoder–decoder trunk's decoder, or its decoders, one per task), ``queries``
        (its per-task query embeddings), ``heads`` and ``total`` (the sum of the others)."""
        adapt = _count(getattr(self.trunk, "adapters", None))
        tokens = _count(getattr(self.trunk, "task_tokens", None))
        decoder = _count(getattr(self.trunk, "decoders", None))
        queries = _count(getattr(self.trunk, "queries", None))
        counts = {
            "encoders": _count(self.encoders),
            "trunk": _count(self.trunk) - adapt - tokens - decoder - queries,
            "trunk_adapt": adapt,
            "task_tokens": tokens,
            "decoder": decoder,
            "queries": queries,
            "heads": _count(self.heads),
        }
        counts["total"] = _count(self)
        return counts


def build_model(cfg: ModelConfig, tasks: list[TaskSpec], vocab_size: int | None = None) -> Model:
    """The model of ``model:`` for the task table ``tasks``."""
    return Model(cfg, tasks, vocab_size=vocab_size)


__all__ = ["Model", "build_model", "resolve_heads", "task_token_ids"]
