"""CVLP's momentum key network and queue of negatives (Shi et al. 2020), as a trainer hook.

The key network is an EMA copy of the whole model (:class:`~cotrain.train.hooks.EMAHook`: identical
at step 0, never trained, ``key ← m·key + (1−m)·query`` after every optimizer step, buffers
copied), whose co-attention trunk drops layers at random (:mod:`cotrain.trunks.layer_drop`; with
``replace_pairs`` its successor layers are EMAs of the query network's layers ``2i``). Per
contrastive task (a ``pretrain`` head whose ``objectives`` list ``contrastive``) the hook keeps a
queue of the key network's projected region features (:mod:`cotrain.train.key_queue`).

One step of a contrastive task::

    transform (after the masking transforms):
        keys = keynet.heads[head].region_keys(keynet.encode({**batch, regions: region_target}, task))
        batch += cvlp_keys [B, R, P]  (L2-normalised, no gradient)
                 cvlp_queue [Q, P], cvlp_queue_valid [Q] bool   (snapshots of the queue)
    forward / backward / optimizer step (the head's InfoNCE reads the three keys)
    after_update: EMA step of the key network, then the step's B·R keys (padded regions invalid),
                  gathered across ranks, go into the queue, overwriting the oldest

The key network sees the masked text as given but the regions before masking (``region_target``
when the batch has it). Its layer drop is drawn from a generator seeded by (run seed, step, task),
so a resumed run drops alike; the queues, their pointers, the key network (successors included)
and the update count are saved with the checkpoint (``hook.cvlp.*``).

The hook needs from the head only ``region_keys(out: TrunkOutput) -> [B, R, P]``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ConfigError, ContrastiveConfig, ExperimentConfig, HeadConfig
from ..errors import InputError
from ..tasks import TaskSpec
from ..trunks.layer_drop import set_layer_drop, successor_pairs
from .checkpoint import CheckpointError
from .distributed import DistInfo
from .hooks import EMAHook, Hook
from .key_queue import KeyQueue, gather_slots, step_slots

DROP_SALT = 0x43564C50  # keeps the layer-drop draws apart from the masking transforms' (same seed, step)
SHARED = ("momentum", "layer_drop", "layer_drop_mode")  # one key network: these must agree across heads


def regions_per_image(data, task: str) -> int:
    """R of a task's training data (``regions [N, R, F]``), read from its first row."""
    split = data.train
    if "regions" not in split:
        raise ConfigError(f"task {task!r}: CVLP's contrastive objective needs region features; its training data "
                          f"has {split.keys()}")
    return int(split.column("regions", np.arange(1)).shape[-2])


class CVLPHook(Hook):
    """``CVLPHook({task: (head key, ContrastiveConfig)}, seed)``: the key network, its layer drop
    and one queue per contrastive task (see the module docstring). ``keynet`` is the key network
    (None before the fit starts)."""

    name = "cvlp"

    def __init__(self, tasks: dict[str, tuple[str, ContrastiveConfig]], seed: int = 0) -> None:
        if not tasks:
            raise ValueError("CVLPHook needs at least one contrastive task")
        first = next(iter(tasks.values()))[1]
        for key in SHARED:
            values = {f"{t} (head {h})": getattr(c, key) for t, (h, c) in tasks.items()}
            if len(set(values.values())) > 1:
                raise ConfigError(f"contrastive tasks share one key network, so model.heads.<head>.contrastive.{key} "
                                  f"must agree; got {values}")
        self.tasks = dict(tasks)
        self.order = {t: i for i, t in enumerate(sorted(self.tasks))}
        self.seed = int(seed)
        self.momentum, self.layer_drop, self.layer_drop_mode = first.momentum, first.layer_drop, first.layer_drop_mode
        self.ema = EMAHook(first.momentum)
        self.queues: dict[str, KeyQueue] = {}
        self.slots: dict[str, int] = {}  # keys one rank enqueues per step: batch_size × R
        self.updates = 0  # optimizer steps the key network followed
        self._step_keys: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._pending: tuple[dict | None, dict[str, torch.Tensor] | None] = (None, None)

    @property
    def keynet(self) -> torch.nn.Module | None:
        return self.ema.model

    # ------------------------------------------------------------------ start
    def on_fit_start(self, trainer) -> None:
        """Check the heads and queue sizes, make the key network and the queues (once); a resumed
        state waiting to be loaded is loaded now."""
        if self.keynet is not None:
            return
        model, world = trainer.model, getattr(trainer, "dist", DistInfo()).world_size
        device = next(model.parameters()).device
        for task, (head, cc) in self.tasks.items():
            if head not in model.heads or not hasattr(model.heads[head], "region_keys"):
                raise ConfigError(f"task {task!r}: CVLP needs head {head!r} with region_keys (a pretrain head); "
                                  f"the model's heads: {list(model.heads)}")
            b, r = trainer.iterators[task].batch_size, regions_per_image(trainer.data[task], task)
            per_step = b * r * world
            if cc.queue_size % per_step:
                raise ConfigError(
                    f"model.heads.{head}.contrastive.queue_size {cc.queue_size} (task {task!r}) is not a multiple of the "
                    f"keys one step enqueues: batch_size {b} × {r} regions × {world} rank(s) = {per_step}")
            self.slots[task] = b * r
            self.queues[task] = KeyQueue(cc.queue_size, cc.proj_dim, device)
        keynet = self.ema.attach(model)
        keynet.train(model.training)
        if self.layer_drop > 0:
            try:
                set_layer_drop(keynet.trunk, self.layer_drop, self.layer_drop_mode)
            except ValueError as err:
                raise ConfigError(f"contrastive.layer_drop {self.layer_drop}: {err} (model.trunk coattention); "
                                  "set layer_drop: 0 for another trunk") from None
        self._load_pending()

    # ------------------------------------------------------------------ step
    def _drop_generator(self, step: int, task: str) -> torch.Generator:
        return torch.Generator().manual_seed((DROP_SALT + self.seed * 1_000_003 + step * 1009 + self.order[task])
                                             % (2**63 - 1))

    def transform(self, trainer, task: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add ``cvlp_keys [B, R, P]``, ``cvlp_queue [Q, P]`` and ``cvlp_queue_valid [Q]`` to a
        contrastive task's batch (other tasks' batches pass unchanged)."""
        if task not in self.tasks:
            return batch
        if self.keynet is None:
            self.on_fit_start(trainer)
        head, cc = self.tasks[task]
        keynet = self.keynet
        kbatch = {**batch, "regions": batch["region_target"]} if "region_target" in batch else batch
        if self.layer_drop > 0:
            keynet.trunk.drop_generator = self._drop_generator(trainer.step, task)
        with torch.no_grad():
            keys = keynet.heads[head].region_keys(keynet.encode(kbatch, task)).detach()
        mask = batch.get("region_mask")
        want = (*mask.shape, cc.proj_dim) if mask is not None else None
        if keys.dim() != 3 or keys.shape[-1] != cc.proj_dim or (want is not None and tuple(keys.shape) != want):
            raise InputError(f"task {task!r}: head {head!r}'s region_keys gave {tuple(keys.shape)}; CVLP needs "
                             f"[B, R, P = contrastive.proj_dim {cc.proj_dim}] matching region_mask "
                             f"{None if mask is None else tuple(mask.shape)}")
        self._step_keys[task] = (keys, mask)
        queue = self.queues[task]
        return {**batch, "cvlp_keys": keys, "cvlp_queue": queue.keys.clone(), "cvlp_queue_valid": queue.valid.clone()}

    @torch.no_grad()
    def after_update(self, trainer, tasks: list[str]) -> None:
        """EMA step of the key network (and its successors), then enqueue this step's keys."""
        if self.keynet is None:
            self.on_fit_start(trainer)
        self.ema.update(trainer.model)
        m = self.momentum
        for succ, layer in successor_pairs(self.keynet.trunk, trainer.model.trunk):
            for s, p in zip(succ.parameters(), layer.parameters()):
                s.lerp_(p.detach(), 1.0 - m)
            for s, b in zip(succ.buffers(), layer.buffers()):
                s.copy_(b)
        self.updates += 1
        info = getattr(trainer, "dist", DistInfo())
        for task in tasks:
            if task in self._step_keys:
                keys, mask = self._step_keys.pop(task)
                flat, valid = step_slots(keys, mask, self.slots[task])
                self.queues[task].enqueue(*gather_slots(flat, valid, info))
        self._step_keys.clear()

    def after_step(self, trainer, losses, epoch_ends) -> None:
        log_every = trainer.cfg.run.log_every
        if self.queues and (trainer.step % log_every == 0 or trainer.step == trainer.end_step):
            trainer.logger.log("cvlp", trainer.step, **self.stats())

    # ------------------------------------------------------------------ statistics
    def queue_fill(self, task: str) -> float:
        """The valid share of ``task``'s queue."""
        if task not in self.queues:
            raise InputError(f"no CVLP queue for task {task!r}; contrastive tasks: {sorted(self.tasks)}")
        return self.queues[task].fill()

    def stats(self) -> dict[str, float]:
        """``{"queue_fill/<task>": valid share}`` of every queue."""
        return {f"queue_fill/{t}": round(q.fill(), 5) for t, q in self.queues.items()}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "layer_drop": self.layer_drop, "layer_drop_mode": self.layer_drop_mode,
                "updates": self.updates, "queues": {t: q.state_dict() for t, q in self.queues.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._pending = (state, self._pending[1])
        if self.keynet is not None:
            self._load_pending()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.keynet is None:
            return {}
        out = {f"key.{k}": v.detach().cpu().clone() for k, v in self.keynet.state_dict().items()}
        for task, q in self.queues.items():
            out.update({f"queue.{task}.{k}": v for k, v in q.state_tensors().items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._pending = (self._pending[0], dict(tensors))
        if self.keynet is not None:
            self._load_pending()

    def _load_pending(self) -> None:
        state, tensors = self._pending
        self._pending = (None, None)
        where = "checkpoint hooks.cvlp"
        if state is not None:
            saved = {k: state.get(k) for k in SHARED}
            now = {k: getattr(self, k) for k in SHARED}
            if saved != now:
                raise CheckpointError(f"{where}: saved with {saved}, but the config asks for {now}; a resumed run "
                                      "would not continue the uninterrupted one")
            if sorted(state.get("queues", {})) != sorted(self.queues):
                raise CheckpointError(f"{where}: holds queues of tasks {sorted(state.get('queues', {}))}, "
                                      f"the config's contrastive tasks are {sorted(self.queues)}")
            try:
                for task, q in self.queues.items():
                    q.load_state_dict(state["queues"][task], f"{where}.queues.{task}")
            except InputError as err:
                raise CheckpointError(str(err)) from None
            self.updates = int(state["updates"])
        if tensors:
            key = {k[len("key."):]: v for k, v in tensors.items() if k.startswith("key.")}
            try:
                self.keynet.load_state_dict(key)
                for task, q in self.queues.items():
                    q.load_state_tensors({k: tensors[f"queue.{task}.{k}"] for k in ("keys", "valid")},
                                         f"hook.cvlp.queue.{task}")
            except (RuntimeError, KeyError, InputError) as err:
                raise CheckpointError(f"the checkpoint's CVLP key network / queues (hook.cvlp.*) do not fit: "
                                      f"{type(err).__name__}: {err}") from None


def build_cvlp_hook(cfg: ExperimentConfig, specs: list[TaskSpec]) -> CVLPHook | None:
    """The hook for the tasks whose ``pretrain`` head lists ``contrastive`` in its ``objectives``
    (None when no task's does), seeded with ``run.seed``."""
    tasks = {}
    for spec in specs:
        if spec.head_kind != "pretrain":
            continue
        head_cfg = cfg.model.heads.get(spec.head) or HeadConfig(type="pretrain")
        if "contrastive" in head_cfg.objectives:
            tasks[spec.name] = (spec.head, head_cfg.contrastive)
    return CVLPHook(tasks, seed=cfg.run.seed) if tasks else None


__all__ = ["CVLPHook", "build_cvlp_hook", "regions_per_image"]
