"""The training loop: one loop for every schedule.

Update semantics are explicit. For one-task schedules (task-by-task, alternating, uniform,
weighted) each global step draws one task, runs one batch of it and makes one optimizer update.
For ``accumulate`` each step runs one batch of every task, accumulates their gradients and makes
one update. A task's ``lr_mult`` scales the learning rate of the updates its batches drive
(``optim.task_lr_mode: lr``), or, with ``loss_scale``, multiplies its loss by
``lr_mult / min(lr_mult)`` at the base learning rate (12-in-1's loss scaling). An encoder's
``lr_mult`` (``model.encoders.text.lr_mult``, ``.image.lr_mult``: UniT's lower LR for BERT and the
backbone) multiplies its parameters' LR on top of both (:func:`build_optimizer`). Heads that a step does
not use get no gradient (``None``) and are skipped by AdamW: no update, no weight decay.

Everything else is a hook (:mod:`cotrain.train.hooks`), a small separately tested piece called at
fixed points of the step: 12-in-1's curriculum pre-phase chooses the step's tasks; Dynamic
Stop-and-Go lets through only the tasks that train now and is fed each task's validation metric at
the end of its epochs (a step whose every task is stopped makes no update but still counts; at an
``optim.decay: step`` learning-rate drop DSG applies its ``lr_drop`` policy); per-task batch
transforms (``tasks[].transforms``, e.g. masking) run before the forward pass; CVLP's hook
(:mod:`cotrain.train.cvlp`: an EMA copy of the model as momentum key network, layer-dropped, and a
queue of its region features) adds the keys and negatives to a contrastive task's batch and updates
after every optimizer step; logging and
the progress bar run after every step. Extra hooks are given as ``Trainer(..., hooks=[...])``.

Under ``torchrun`` every rank trains the same task each step on its own batches and gradients are
averaged before the update (:mod:`cotrain.train.distributed`); rank 0 writes logs and checkpoints.

Batches come from each task's :class:`~cotrain.data.arrays.BatchIterator`, built with the view
sampler its data asks for (:func:`cotrain.data.negatives.view_sampler`: a retrieval task's images and
negatives, drawn per epoch and batch; none for other tasks), so the loop has no per-task branch.

Exact resume: the schedule is a pure function of the global step, batch iterators are
``(epoch, position)`` (what a view sampler draws follows from them), the hooks' states (DSG's, the
EMA weights) are saved, and the checkpoint holds weights, optimizer state and the torch RNG states
(CPU, and CUDA's when available), so a run stopped at step k and resumed ends with the same weights
as an uninterrupted one. A checkpoint that cannot give that (no optimizer state) is refused unless
``allow_inexact_resume`` is set (:meth:`Trainer.restore`).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import ConfigError, ExperimentConfig, config_from_dict, dump_config
from ..data.arrays import BatchIterator, TaskData, batch_to
from ..data.negatives import view_sampler
from ..data.sources import build_all_task_data
from ..errors import CotrainError
from ..data.transforms import build_transforms
from ..model import Model, build_model
from ..schedules import build_schedule
from ..tasks import TaskSpec, specs_from_data
from .checkpoint import CheckpointError, CheckpointWarning, load_checkpoint, save_checkpoint
from .checkpoint_match import load_model_weights, load_optimizer_state
from .checkpoint_state import STATE_VERSION
from .curriculum import build_curriculum
from .cvlp import build_cvlp_hook
from .distributed import all_reduce_gradients, barrier, init_distributed, rank_device
from .dsg import DynamicStopAndGo
from .evaluate import answer_type_lines, evaluate_task, record_fields
from .hooks import CurriculumHook, DSGHook, Hook, LoggingHook, TransformHook, hook_states, load_hook_states
from .logging import RunLogger
from .lr import loss_scales, lr_factor, warmup_from_largest
from .rng import TORCH_KEY, restore_rng
from .threads import apply_threads


class NullLogger:
    """The logger of ranks other than 0 under torchrun: writes nothing."""

    def log(self, kind: str, step: int, **fields: Any) -> dict:
        return {"kind": kind, "step": int(step), **fields}

    def close(self) -> None:
        pass


class TrainingDiverged(CotrainError, RuntimeError):
    """A loss became NaN or infinite; the message names the task and the step."""


def warmup_steps(cfg: ExperimentConfig) -> int:
    """``optim.warmup_steps``, or 12-in-1's ``eta * N`` when ``optim.warmup_eta`` is set: N is the
    largest single-task run, a task's ``steps`` or, where a task sets none, ``run.steps / #tasks``."""
    o = cfg.optim
    if o.warmup_eta is None:
        return o.warmup_steps
    share = cfg.run.steps // len(cfg.tasks)
    return warmup_from_largest({t.name: t.steps or share for t in cfg.tasks}, o.warmup_eta)


def encoder_lr_mults(model: torch.nn.Module, cfg: ExperimentConfig) -> dict[str, float]:
    """``{kind: lr_mult}`` of the model's encoders whose config section sets one other than 1
    (``model.encoders.text.lr_mult``, ``model.encoders.image.lr_mult``)."""
    encoders = getattr(model, "encoders", None) or {}
    mults = {k: float(getattr(getattr(cfg.model.encoders, k, None), "lr_mult", 1.0)) for k in encoders}
    return {k: m for k, m in mults.items() if m != 1.0}


def build_optimizer(model: torch.nn.Module, cfg: ExperimentConfig) -> torch.optim.AdamW:
    """AdamW with two groups per learning-rate multiplier: weight decay on matrices, none on biases,
    norms, tokens and embeddings' 1-D params.

    Groups: ``(decay, no decay)`` at multiplier 1 first (always, so ``param_groups[0]`` carries the
    base LR), then the same pair for each encoder ``lr_mult`` other than 1 (ascending, empty groups
    left out), each group holding ``"lr_mult"``. The trainer sets ``group["lr"] = base LR · schedule
    factor · task lr_mult · group lr_mult`` every step. With every multiplier 1 the groups are the
    two of old, so older checkpoints still resume.
    """
    mult_of: dict[int, float] = {}
    for kind, m in encoder_lr_mults(model, cfg).items():
        mult_of.update({id(p): m for p in model.encoders[kind].parameters()})
    mults = [1.0] + sorted(set(mult_of.values()))
    decay: dict[float, list] = {m: [] for m in mults}
    no_decay: dict[float, list] = {m: [] for m in mults}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        m = mult_of.get(id(p), 1.0)
        (no_decay if p.ndim <= 1 or name.endswith(("cls_token", "pos_embed")) else decay)[m].append(p)
    o = cfg.optim
    groups = []
    for m in mults:
        for params, wd in ((decay[m], o.weight_decay), (no_decay[m], 0.0)):
            if params or m == 1.0:
                groups.append({"params": params, "weight_decay": wd, "lr": o.lr * m, "lr_mult": m})
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))


class Trainer:
    """Co-train one model on every task of an experiment config.

    Args:
        cfg: the validated experiment.
        data: preloaded task data (default: built from ``cfg``).
        tokenizer: the tokenizer the data was encoded with (needed when a task reads text).
        resume: a checkpoint or run folder to continue from (exactly).
        allow_inexact_resume: resume even from a checkpoint without optimizer / RNG state (those
            start afresh; a warning and a log.jsonl event say so). Without it such a resume is refused.
        hooks: extra :class:`~cotrain.train.hooks.Hook` objects, called after the built-in ones
            (curriculum, DSG, transforms) at each point of the step.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        *,
        data: dict[str, TaskData] | None = None,
        tokenizer=None,
        resume: str | Path | None = None,
        allow_inexact_resume: bool = False,
        hooks: list[Hook] | None = None,
    ) -> None:
        self.cfg = cfg
        run = cfg.run
        apply_threads(run.threads)  # run.threads, else OMP_NUM_THREADS, else the CPUs affinity and cgroup quota allow
        self.dist = init_distributed(run.device)
        self.device = torch.device(rank_device(run.device, self.dist))
        self.out_dir = Path(run.out_dir)
        if data is None:
            data, tokenizer = build_all_task_data(cfg, progress=run.progress)
        missing = [t.name for t in cfg.tasks if t.name not in data]
        if missing:
            raise ValueError(f"no data given for tasks {missing}")
        self.data = data
        self.tokenizer = tokenizer
        self.tasks = {t.name: t for t in cfg.tasks}
        self.specs: list[TaskSpec] = specs_from_data(cfg, data)

        torch.manual_seed(run.seed)
        vocab = getattr(tokenizer, "vocab_size", None)
        self.model: Model = build_model(cfg.model, self.specs, vocab_size=vocab).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg)
        # kept apart from the groups: restoring a checkpoint replaces the group dicts with the saved ones
        self.group_lr_mults = [g["lr_mult"] for g in self.optimizer.param_groups]
        self.schedule = build_schedule(
            cfg.schedule,
            [t.name for t in cfg.tasks],
            steps=run.steps,
            seed=run.seed,
            sizes={n: len(d.train) for n, d in data.items()},
            budgets={t.name: t.steps for t in cfg.tasks},
            weights={t.name: t.weight for t in cfg.tasks},
        )
        self.dsg: DynamicStopAndGo | None = None
        # each task's batch transforms, built once: the TransformHook's, and the pretrain metric's
        self.transforms = {t.name: build_transforms(t.transforms, tokenizer) for t in cfg.tasks if t.transforms}
        self.hooks: list[Hook] = self._builtin_hooks() + list(hooks or [])
        self.warmup_steps = warmup_steps(cfg)
        self.iterators = {
            t.name: BatchIterator(data[t.name].train, t.batch_size, seed=run.seed * 1_000_003 + i + 7919 * self.dist.rank,
                                  views=view_sampler(data[t.name].train, t))
            for i, t in enumerate(cfg.tasks)
        }
        mults = {t.name: t.lr_mult for t in cfg.tasks}
        if cfg.optim.task_lr_mode == "lr":
            self.lr_mult, self.loss_scale = mults, {n: 1.0 for n in mults}
        else:
            self.lr_mult, self.loss_scale = {n: 1.0 for n in mults}, loss_scales(mults)
        self.step = 0
        self.end_step = run.steps
        self.task_steps = {n: 0 for n in self.tasks}
        self.task_time = {n: 0.0 for n in self.tasks}
        self.history: list[dict] = []
        self.last_terms: dict[str, dict[str, torch.Tensor]] = {}  # each trained task's loss terms / stats of the last step
        self.eval_seconds: dict[str, float] = {}  # evaluation time per split in this process
        self.timing: dict[str, float] = {}  # fit(): train_s (validation included), val_s, test_s
        self.last_checkpoint: Path | None = None
        self.logger: RunLogger | NullLogger = NullLogger()
        if resume is not None:
            self.restore(resume, allow_inexact=allow_inexact_resume)

    def _builtin_hooks(self) -> list[Hook]:
        """Curriculum pre-phase, Dynamic Stop-and-Go, batch transforms and CVLP's key network and
        queue (for a ``pretrain`` head with the ``contrastive`` objective), as the config asks."""
        cfg, hooks = self.cfg, []
        cur = cfg.schedule.curriculum
        if cur.kind != "none":
            groups = {s.name: s.group for s in self.specs if s.group}
            hooks.append(CurriculumHook(build_curriculum(cur.kind, groups, cur.first_group, cur.steps, self.schedule)))
        d = cfg.schedule.dsg
        if d.enabled:
            self.dsg = DynamicStopAndGo(
                [t.name for t in cfg.tasks], delta=d.delta, converge_tol=d.converge_tol,
                converge_epochs=d.converge_epochs, diverge_tol=d.diverge_tol, relative=d.relative, lr_drop=d.lr_drop,
            )
            drops = cfg.optim.lr_drops if cfg.optim.decay == "step" else []
            hooks.append(DSGHook(self.dsg, drops, cfg.run.eval_max_batches))
        if self.transforms:
            hooks.append(TransformHook(self.transforms, cfg.run.seed))
        cvlp = build_cvlp_hook(cfg, self.specs)  # after the masks: the key network sees the masked text
        if cvlp is not None:
            hooks.append(cvlp)
        return hooks

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "config": self.cfg.model_dump(mode="json"),
            "tasks": [s.to_dict() for s in self.specs],
            "class_names": {n: d.class_names for n, d in self.data.items()},
            "sample_rate": {n: d.sample_rate for n, d in self.data.items()},
            "schedule": self.schedule.state_dict(),
            "iterators": {n: it.state_dict() for n, it in self.iterators.items()},
            "hooks": hook_states(self.hooks)[0],
            "task_steps": self.task_steps,
            "task_time": self.task_time,
            "history": self.history,
        }

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 only under torchrun; the other ranks wait for it)."""
        if not self.dist.is_main:
            barrier(self.dist)
            return self.last_checkpoint
        vocab_file = None
        if self.tokenizer is not None:
            vocab_file = self.out_dir / "vocab.txt"
            self.tokenizer.save(vocab_file)
        self.last_checkpoint = save_checkpoint(
            self.out_dir / "checkpoints",
            self.step,
            self.model,
            self.state(),
            self.optimizer,
            vocab_file=vocab_file,
            keep=self.cfg.run.keep_checkpoints,
            extra_tensors=hook_states(self.hooks)[1],
        )
        barrier(self.dist)
        return self.last_checkpoint

    def restore(self, path: str | Path, *, allow_inexact: bool = False) -> None:
        """Continue from a checkpoint (a checkpoint folder, or a run folder's newest readable one).

        Raises CheckpointError naming the file for a damaged checkpoint, weights that do not fit the
        model, or optimizer state that does not fit its parameters. A checkpoint without optimizer
        state (``optimizer.safetensors``, state.json's ``optimizer``) or RNG state cannot continue
        exactly and is refused, unless ``allow_inexact``: then what is missing starts afresh, with a
        CheckpointWarning and an ``inexact resume`` event in log.jsonl.
        """
        ck = load_checkpoint(path)
        st, ckpt = ck["state"], ck["dir"]
        opt_file, state_file = ckpt / "optimizer.safetensors", ckpt / "state.json"
        saved_tasks = [s["name"] for s in st["tasks"]]
        if saved_tasks != [s.name for s in self.specs]:
            raise ConfigError(f"{ckpt}: checkpoint tasks {saved_tasks} differ from the config's {[s.name for s in self.specs]}")
        extra = ck["extra"]
        has_optimizer, has_rng = extra is not None and "optimizer" in st, extra is not None and TORCH_KEY in extra
        gaps = [f"{opt_file}: missing"] if extra is None else []
        gaps += [f"{state_file}: has no 'optimizer' field (saved without an optimizer)"] if "optimizer" not in st else []
        gaps += [f"{opt_file}: has no {TORCH_KEY!r} (the RNG state)"] if extra is not None and not has_rng else []
        reset = (["the optimizer moments (AdamW averages and step counts)"] if not has_optimizer else []) + \
                (["the RNG state"] if not has_rng else [])
        if gaps and not allow_inexact:
            raise CheckpointError(f"{'; '.join(gaps)}, so {' and '.join(reset)} cannot be restored and the run would "
                                  "not continue as an uninterrupted one would; to resume anyway with that reset, pass "
                                  "--allow-inexact-resume (Trainer(..., allow_inexact_resume=True))")
        load_model_weights(self.model, ck["model"], ckpt / "model.safetensors")
        if has_optimizer:
            load_optimizer_state(self.optimizer, extra, st["optimizer"], opt_file, state_file)
        notes = restore_rng(extra, opt_file) if extra is not None else []
        self.schedule.load_state_dict(st["schedule"])
        try:
            for name, it_state in st["iterators"].items():
                self.iterators[name].load_state_dict(it_state)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{state_file}: malformed 'iterators' ({type(err).__name__}: {err})") from None
        load_hook_states(self.hooks, st.get("hooks", {}), extra or {})
        self.step = int(st["step"])
        self.task_steps.update(st.get("task_steps", {}))
        self.task_time.update(st.get("task_time", {}))
        self.history = list(st.get("history", []))
        self.last_checkpoint = ckpt
        for note in notes:
            warnings.warn(note, CheckpointWarning, stacklevel=3)
        if gaps:
            self._report_inexact(ckpt, gaps, reset)

    def _report_inexact(self, ckpt: Path, gaps: list[str], reset: list[str]) -> None:
        """The loud part of an allowed inexact resume: a CheckpointWarning and a log.jsonl event."""
        warnings.warn(f"INEXACT resume from {ckpt} at step {self.step} (allowed): {'; '.join(gaps)}; so "
                      f"{' and '.join(reset)} {'are' if len(reset) > 1 else 'is'} reset, and this run will not "
                      "reproduce an uninterrupted one", CheckpointWarning, stacklevel=4)
        if self.dist.is_main:
            with RunLogger(self.out_dir, tensorboard=False, append=True) as log:
                log.log("event", self.step, message="inexact resume", checkpoint=str(ckpt), reason="; ".join(gaps), reset=reset)

    # ------------------------------------------------------------------ training
    def _set_lr(self, lr: float) -> None:
        """Every group's LR: ``lr`` times the group's encoder ``lr_mult`` (:func:`build_optimizer`)."""
        for group, mult in zip(self.optimizer.param_groups, self.group_lr_mults):
            group["lr"] = lr * mult

    def _task_loss(self, task: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = next(self.iterators[task])
        if self.device.type != "cpu":
            batch = batch_to(batch, self.device)
        for hook in self.hooks:
            batch = hook.transform(self, task, batch)
        losses = self.model.losses(batch, task)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""
            raise TrainingDiverged(f"non-finite loss ({float(loss.detach())}) in task {task!r} at step {self.step}{where}")
        scale = self.loss_scale[task]
        return (loss * scale if scale != 1.0 else loss), losses

    def train_step(self) -> dict[str, torch.Tensor]:
        """One global step (at most one update). Returns the detached loss of each task it trained."""
        tasks = self.schedule.tasks_at(self.step)
        for hook in self.hooks:
            tasks = hook.select(self, self.step, tasks)
        o = self.cfg.optim
        base = o.lr * lr_factor(
            self.step, total_steps=self.cfg.run.steps, warmup_steps=self.warmup_steps, decay=o.decay,
            min_ratio=o.min_lr_ratio, drops=o.lr_drops, drop_factor=o.lr_drop_factor,
        )
        self._set_lr(base * self.lr_mult[tasks[0]] if len(tasks) == 1 else base)
        out: dict[str, torch.Tensor] = {}
        self.last_terms = {}
        epochs = {t: self.iterators[t].epoch for t in tasks}
        if tasks:
            for task in tasks:
                t0 = time.perf_counter()
                loss, terms = self._task_loss(task)
                loss.backward()
                out[task] = loss.detach()
                self.last_terms[task] = {k: v.detach() for k, v in terms.items() if k != "loss" and v.numel() == 1}
                self.task_steps[task] += 1
                self.task_time[task] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if self.dist.enabled:
                all_reduce_gradients(self.model.parameters(), self.dist.world_size)
            if o.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            for hook in self.hooks:
                hook.after_update(self, tasks)
            share = (time.perf_counter() - t0) / len(tasks)
            for task in tasks:
                self.task_time[task] += share
        self.step += 1
        ended = [t for t in tasks if self.iterators[t].epoch > epochs[t]]  # tasks that finished an epoch
        for hook in self.hooks:
            hook.after_step(self, out, ended)
        return out

    def evaluate(
        self, split: str = "val", max_batches: int | None = None, tasks: list[str] | None = None
    ) -> dict[str, dict]:
        results = {}
        for name, t in self.tasks.items():
            if tasks is not None and name not in tasks:
                continue
            bs = t.eval_batch_size or max(t.batch_size, 64)
            results[name] = evaluate_task(
                self.model, name, self.data[name], self.model.spec(name).metric, split, bs, max_batches,
                str(self.device), options=self.cfg.run, transforms=self.transforms.get(name, ()), retrieval=t.retrieval,
            )
            self.eval_seconds[split] = self.eval_seconds.get(split, 0.0) + results[name]["eval_time_s"]
        return results

    def fit(self, stop_at: int | None = None) -> dict[str, dict]:
        """Train until ``run.steps`` (or ``stop_at``, for tests of resume); evaluate on test at the end.

        Returns the per-task test results (``metric``, ``value``, ``chance``, ``steps``, ``time_s``:
        its training time, ``eval_time_s``: its test evaluation's) when training reached
        ``run.steps``, else ``{}``. ``self.timing`` then holds ``train_s`` (the loop, validation
        included), ``val_s`` (the validation in it) and ``test_s`` (the final test evaluation); a
        ``done`` event in log.jsonl records them.
        """
        run = self.cfg.run
        self.end_step = end = min(run.steps, stop_at) if stop_at is not None else run.steps
        main = self.dist.is_main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(dump_config(self.cfg))
        self.logger = RunLogger(self.out_dir, tensorboard=run.tensorboard, append=self.step > 0) if main else NullLogger()
        if self.step == 0:
            self.logger.log("event", 0, message="start", schedule=self.schedule.describe(),
                            params=self.model.parameter_counts()["total"])
        bar = tqdm(total=run.steps, initial=self.step, disable=not (run.progress and main), dynamic_ncols=True, unit="step")
        hooks = self.hooks + [LoggingHook(run.log_every, bar)]
        base, self.hooks = self.hooks, hooks
        t_start, self.eval_seconds = time.perf_counter(), {}
        try:
            for hook in self.hooks:
                hook.on_fit_start(self)
            while self.step < end:
                self.train_step()
                due = [n for n, t in self.tasks.items() if self.step % (t.eval_every or run.eval_every) == 0]
                if due and self.step < run.steps:
                    self._log_eval(self.logger, "val", run.eval_max_batches, due)
                if self.step % run.checkpoint_every == 0 or self.step == end:
                    self.save()
            for hook in self.hooks:
                hook.on_fit_end(self)
            if self.step < run.steps:
                return {}
            t_test = time.perf_counter()
            results = self._log_eval(self.logger, "test", None)
            self.timing = {"train_s": round(t_test - t_start, 2), "val_s": round(self.eval_seconds.get("val", 0.0), 2),
                           "test_s": round(time.perf_counter() - t_test, 2)}
            self.logger.log("event", self.step, message="done", **self.timing)
            for name, r in results.items():
                r["steps"] = self.task_steps[name]
                r["time_s"] = round(self.task_time[name], 2)
            if main:
                (self.out_dir / "results.json").write_text(json.dumps(results, indent=1))
            return results
        finally:
            self.hooks = base
            bar.close()
            self.logger.close()
            self.logger = NullLogger()

    def _log_eval(
        self, logger: RunLogger, split: str, max_batches: int | None, tasks: list[str] | None = None
    ) -> dict[str, dict]:
        results = self.evaluate(split, max_batches, tasks)
        flat = {k: v for t, r in results.items() for k, v in record_fields(t, r).items()}
        logger.log("eval", self.step, split=split, **flat)
        self.history.append({"step": self.step, "split": split, **flat})
        return results


def config_from_state(state: dict) -> ExperimentConfig:
    return config_from_dict(state["config"], origin="checkpoint state.json")


def format_results(results: dict[str, dict], specs: dict[str, TaskSpec] | None = None) -> str:
    """A Markdown table: task, inputs, metric, test score, chance, steps, training time; then a line
    per VQA task with its accuracy per answer type, per detection task its COCO figures, and per
    retrieval task its pool and R@1/5/10 both directions with chance (:func:`answer_type_lines`)."""
    lines = [
        "| task | inputs | metric | test | chance | steps | time (s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        inputs = "+".join(specs[name].inputs) if specs and name in specs else ""
        lines.append(
            f"| {name} | {inputs} | {r['metric']} | {r['value']:.3f} | {r['chance']:.3f} | {r.get('steps', '')} | {r.get('time_s', '')} |"
        )
    extra = answer_type_lines(results)
    return "\n".join(lines + ([""] + extra if extra else []))
