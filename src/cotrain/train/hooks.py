"""Trainer hooks: small, separately tested pieces the one training loop calls at fixed points,
instead of branches inside the loop.

One global step of :meth:`cotrain.train.trainer.Trainer.train_step`::

    tasks = schedule.tasks_at(step)
    for hook: tasks = hook.select(trainer, step, tasks)          # curriculum pre-phase; DSG gating
    for task in tasks:
        batch = next(iterator[task])
        for hook: batch = hook.transform(trainer, task, batch)   # per-task batch transforms (masking)
        loss(batch).backward()
    all-reduce, clip, optimizer step
    for hook: hook.after_update(trainer, tasks)                  # EMA copies (CVLP's key network)
    step += 1
    for hook: hook.after_step(trainer, losses, epoch_ends)       # DSG fed at task-epoch ends; logging

A hook's JSON state (``state_dict``) goes into the checkpoint's ``state.json`` under ``hooks.<name>``,
its tensors (``state_tensors``) into ``optimizer.safetensors`` under ``hook.<name>.``; both come
back on resume, so a resumed run takes the same decisions.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .curriculum import PrePhase
from .dsg import DynamicStopAndGo
from .evaluate import record_fields


class Hook:
    """Base class: every method does nothing. ``name`` keys the hook's saved state."""

    name = "hook"

    def on_fit_start(self, trainer) -> None:
        pass

    def select(self, trainer, step: int, tasks: list[str]) -> list[str]:
        """The tasks that train at ``step`` (given those the schedule, or an earlier hook, offers)."""
        return tasks

    def transform(self, trainer, task: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A task's training batch before the forward pass."""
        return batch

    def after_update(self, trainer, tasks: list[str]) -> None:
        """Right after the optimizer step (not called on a step that trained nothing)."""

    def after_step(self, trainer, losses: dict[str, torch.Tensor], epoch_ends: list[str]) -> None:
        """After every global step (``trainer.step`` already advanced); ``epoch_ends``: the tasks whose
        batch iterator finished an epoch in this step."""

    def on_fit_end(self, trainer) -> None:
        pass

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class CurriculumHook(Hook):
    """12-in-1's curriculum / anti-curriculum pre-phase: round-robin over the first group's tasks
    for ``prephase.steps`` steps, then the schedule's step ``s - steps`` (:class:`PrePhase`)."""

    name = "curriculum"

    def __init__(self, prephase: PrePhase) -> None:
        self.prephase = prephase

    def select(self, trainer, step: int, tasks: list[str]) -> list[str]:
        return self.prephase.tasks_at(step)


class DSGHook(Hook):
    """Dynamic Stop-and-Go: a step trains only the offered tasks DSG lets through; a task's
    validation metric is fed to DSG at the end of each of its epochs (logged as ``kind: dsg``); at an
    ``optim.decay: step`` learning-rate drop DSG applies its ``lr_drop`` policy."""

    name = "dsg"

    def __init__(self, dsg: DynamicStopAndGo, lr_drops: list[int] = (), max_batches: int | None = None) -> None:
        self.dsg, self.lr_drops, self.max_batches = dsg, set(lr_drops), max_batches

    def select(self, trainer, step: int, tasks: list[str]) -> list[str]:
        if step in self.lr_drops:
            self.dsg.on_lr_drop(step)
        return [t for t in tasks if self.dsg.should_update(t, step)]

    def after_step(self, trainer, losses, epoch_ends: list[str]) -> None:
        for task in epoch_ends:
            r = trainer.evaluate("val", self.max_batches, [task])[task]
            change = self.dsg.observe(task, r["value"], trainer.step)
            record = {**record_fields(task, r), "dsg_state": self.dsg.state(task),
                      **({"dsg_change": change} if change else {})}
            trainer.history.append({"step": trainer.step, "split": "val", "dsg": True, **record})
            trainer.logger.log("dsg", trainer.step, task=task, **record)

    def state_dict(self) -> dict:
        return self.dsg.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dsg.load_state_dict(state)


class TransformHook(Hook):
    """Per-task batch transforms (``tasks[].transforms``): each a callable ``(batch, generator) ->
    batch``. The generator is seeded from ``(seed, step, task)``, so a resumed run masks alike."""

    name = "transforms"

    def __init__(self, transforms: dict[str, list], seed: int = 0) -> None:
        self.transforms = {t: list(fs) for t, fs in transforms.items() if fs}
        self.order = {t: i for i, t in enumerate(sorted(self.transforms))}
        self.seed = int(seed)

    def transform(self, trainer, task: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fs = self.transforms.get(task)
        if not fs:
            return batch
        gen = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + trainer.step * 1009 + self.order[task]) % (2**63 - 1))
        for f in fs:
            batch = f(batch, gen)
        return batch


class EMAHook(Hook):
    """An exponential moving average of the model's weights, updated after every optimizer step:
    ``ema ← m · ema + (1 − m) · θ`` (buffers copied). Identical to the model at the start, never
    trained (``requires_grad`` off) — CVLP's momentum key network. ``trainer.ema`` is the copy."""

    name = "ema"

    def __init__(self, momentum: float = 0.999) -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EMA momentum must lie in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.model: torch.nn.Module | None = None
        self._pending: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer) -> None:
        self.attach(trainer.model)
        trainer.ema = self.model

    def attach(self, model: torch.nn.Module) -> torch.nn.Module:
        """Make the EMA copy of ``model`` (once), loading a resumed state if one is pending."""
        if self.model is None:
            self.model = copy.deepcopy(model)
            for p in self.model.parameters():
                p.requires_grad_(False)
            if self._pending is not None:
                self.model.load_state_dict(self._pending)
                self._pending = None
        return self.model

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One EMA step, parameters and buffers matched by name (modules only the copy has, such
        as the successor layers of CVLP's key network, are left to their owner)."""
        ema = self.attach(model)
        params, buffers = dict(ema.named_parameters()), dict(ema.named_buffers())
        for name, p in model.named_parameters():
            params[name].lerp_(p.detach(), 1.0 - self.momentum)
        for name, b in model.named_buffers():
            buffers[name].copy_(b)

    def after_update(self, trainer, tasks: list[str]) -> None:
        self.update(trainer.model)

    def state_dict(self) -> dict:
        return {"momentum": self.momentum}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.model is None else {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if not tensors:
            return
        if self.model is None:
            self._pending = tensors
        else:
            self.model.load_state_dict(tensors)


BAR_STATS = {"stat_contrastive_acc": "c-acc", "stat_queue_fill": "queue"}  # statistics the progress bar shows


class LoggingHook(Hook):
    """Mean training loss per task over the last ``log_every`` steps, the learning rate and steps/s
    to ``log.jsonl`` / TensorBoard; the progress bar's counter, current task and losses.

    Tasks whose head returns several terms (detection's class / box / GIoU losses, pretraining's
    mlm / itm / contrastive and its ``stat_*`` statistics: positive and negative similarity, the
    contrastive accuracy, the queue fill) get each term's mean logged as ``<task>/<term>``; the
    progress bar also shows the contrastive accuracy and the queue fill."""

    name = "logging"

    def __init__(self, log_every: int, bar=None) -> None:
        self.log_every, self.bar = log_every, bar
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.term_sums: dict[str, torch.Tensor] = {}
        self.term_counts: dict[str, int] = {}
        self.window: tuple[float, int] | None = None

    def on_fit_start(self, trainer) -> None:
        import time

        self.window = (time.perf_counter(), trainer.step)

    def after_step(self, trainer, losses, epoch_ends) -> None:
        import time

        for task, val in losses.items():
            self.sums[task] = self.sums[task] + val if task in self.sums else val
            self.counts[task] = self.counts.get(task, 0) + 1
        for task, terms in getattr(trainer, "last_terms", {}).items():
            if len(terms) < 2:  # one term is the loss itself
                continue
            for k, v in terms.items():
                key = f"{task}/{k}"
                self.term_sums[key] = self.term_sums[key] + v if key in self.term_sums else v
                self.term_counts[key] = self.term_counts.get(key, 0) + 1
        if self.bar is not None:
            self.bar.update(1)
            # a step whose tasks DSG stopped trains nothing: there is no loss to name
            self.bar.set_description_str(next(iter(losses), "(stopped)"), refresh=False)
        if trainer.step % self.log_every and trainer.step != trainer.end_step:
            return
        t0, s0 = self.window
        rate = (trainer.step - s0) / max(time.perf_counter() - t0, 1e-9)
        mean = {t: float(self.sums[t]) / self.counts[t] for t in self.sums}
        terms = {k: float(self.term_sums[k]) / self.term_counts[k] for k in self.term_sums}
        trainer.logger.log("train", trainer.step, lr=trainer.optimizer.param_groups[0]["lr"],
                           steps_per_s=round(rate, 3), **{f"loss/{t}": round(v, 5) for t, v in mean.items()},
                           **{k: round(v, 5) for k, v in terms.items()})
        if self.bar is not None:
            stats = {short: f"{v:.2f}" for k, v in terms.items() for stat, short in BAR_STATS.items() if k.endswith("/" + stat)}
            self.bar.set_postfix({t: f"{v:.3f}" for t, v in mean.items()} | stats | {"it/s": f"{rate:.1f}"}, refresh=False)
        self.sums, self.counts, self.term_sums, self.term_counts = {}, {}, {}, {}
        self.window = (time.perf_counter(), trainer.step)


def hook_states(hooks: list[Hook]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON states and the tensors of ``hooks`` for a checkpoint."""
    states = {h.name: h.state_dict() for h in hooks if h.state_dict() is not None}
    tensors = {f"hook.{h.name}.{k}": v for h in hooks for k, v in h.state_tensors().items()}
    return states, tensors


def load_hook_states(hooks: list[Hook], states: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Give each hook back its saved state (a hook with none saved keeps its fresh state)."""
    for h in hooks:
        if h.name in (states or {}):
            h.load_state_dict(states[h.name])
        prefix = f"hook.{h.name}."
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if mine:
            h.load_state_tensors(mine)


__all__ = ["CurriculumHook", "DSGHook", "EMAHook", "Hook", "LoggingHook", "TransformHook", "hook_states",
           "load_hook_states"]
