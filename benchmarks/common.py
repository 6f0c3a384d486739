"""Shared pieces of the experiment scripts (E4, E5, ...): presets, one-run helper, process pool,
and the writer of ``docs/results.md`` sections.

- :func:`base_config` -- the experiment dict of a preset (``small``: the 7 demo tasks at 32 px,
  4 frames, 8 kHz x 1 s audio, a dim-128 / depth-4 / 4-head trunk with conv stems as in ``demo.yaml``, CPU;
  ``full``: dim 384, depth 8, 64 px, 8 frames, 16 kHz, more data and steps, CUDA when present).
  The data cache is ``data.root`` unset, i.e. ``$COTRAIN_DATA`` or ``~/.cache/cotrain`` -- the
  cache ``make demo`` fills, so the small preset reuses it.
- :func:`run_experiment` -- train one config dict (or only build it, ``train=False``) and return
  its per-task test results, parameter counts, optional linear probes and, when asked, the model.
- :func:`run_many` -- independent runs on a pool of worker processes (spawn, one torch thread
  each), results returned in submission order. Every run is seeded (``run.seed``, ``data.seed``)
  and runs single-threaded, so its numbers do not depend on which worker ran it or when.
- :func:`write_section` -- replace the text between ``<!-- NAME:start -->`` and
  ``<!-- NAME:end -->`` in a Markdown file, leaving every other section as it is.
- :func:`header` -- the line above each table: exact command, machine, torch, device, UTC date.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import math
import multiprocessing as mp
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parent.parent

DEMO_TASKS = ["shapes", "count", "digits", "motion", "moving-digits", "sounds", "spoken-digits"]


# ------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    """What differs between the small (2 CPU cores, ~20 min) and the full (GPU) presets."""

    name: str
    per_task_steps: int  # S: the step budget of one task (a single-task model trains S steps)
    dim: int
    depth: int
    num_heads: int
    image_size: int
    frames: int
    sample_rate: int
    seconds: float
    n_train: int
    n_val: int
    n_test: int
    batch_size: int
    lr: float
    device: str  # "auto": cuda when available, else cpu


PRESETS: dict[str, Preset] = {
    # S = 300: see the docstrings of e4_schedules.py / e5_cotrain_vs_single.py for the timing.
    "small": Preset("small", 300, 128, 4, 4, 32, 4, 8000, 1.0, 2000, 200, 400, 32, 1e-3, "cpu"),
    "full": Preset("full", 3000, 384, 8, 6, 64, 8, 16000, 1.0, 10000, 500, 1000, 64, 5e-4, "auto"),
}


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def scaled_steps(steps: int, scale: float) -> int:
    """``steps * scale``, rounded, at least 1."""
    return max(1, int(round(steps * scale)))


def per_task_steps(preset: str | Preset, steps_scale: float = 1.0) -> int:
    """S, the per-task step budget of a preset after ``--steps-scale``."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return scaled_steps(p.per_task_steps, steps_scale)


def task_entry(name: str, preset: str | Preset = "small") -> dict:
    """One world task of the preset, as a config-dict row."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return {
        "name": name,
        "source": {"kind": "world", "name": name, "n_train": p.n_train, "n_val": p.n_val, "n_test": p.n_test},
        "batch_size": p.batch_size,
    }


def base_config(
    preset: str = "small",
    *,
    tasks: Iterable[str] = DEMO_TASKS,
    steps: int | None = None,
    steps_scale: float = 1.0,
    seed: int = 0,
    device: str | None = None,
    out_dir: str = "runs/bench/run",
    name: str = "bench",
    threads: int | None = 1,
) -> dict:
    """The experiment dict of a preset over ``tasks`` (a valid :class:`ExperimentConfig` mapping).

    ``steps`` is the run length before scaling (default: S x number of tasks, the uniform-schedule
    equal-compute budget); ``steps_scale`` multiplies it. Warm-up is 5% of the run (at least 1
    step), so short and long runs have the same LR shape. No validation passes during training
    (the test split is evaluated once at the end), no progress bar, no TensorBoard, one final
    checkpoint.
    """
    p = PRESETS[preset]
    tasks = list(tasks)
    total = scaled_steps(p.per_task_steps * len(tasks) if steps is None else steps, steps_scale)
    return {
        "name": name,
        "data": {"seed": seed},  # root unset: $COTRAIN_DATA or ~/.cache/cotrain, the demo's cache
        "tasks": [task_entry(t, p) for t in tasks],
        "model": {
            "dim": p.dim,
            "depth": p.depth,
            "num_heads": p.num_heads,
            "l_adapt": 0,
            "drop_path": 0.0,
            "encoders": {
                "image": {"image_size": p.image_size, "patch_size": 8, "stem": "conv", "pixel_norm": "per_example"},
                "video": {"frames": p.frames, "image_size": p.image_size, "tubelet": [2, 8, 8], "stem": "conv",
                          "pixel_norm": "per_example"},
                "audio": {
                    "sample_rate": p.sample_rate, "seconds": p.seconds, "n_fft": 256 * p.sample_rate // 8000,
                    "hop_length": 128 * p.sample_rate // 8000, "n_mels": 64, "patch": [16, 16],
                },
            },
        },
        "schedule": {"kind": "uniform"},
        "optim": {"lr": p.lr, "weight_decay": 0.05, "warmup_steps": warmup_for(total), "decay": "cosine"},
        "run": {
            "steps": total,
            "seed": seed,
            "out_dir": out_dir,
            "eval_every": total,  # == steps: no validation pass during training
            "log_every": max(1, min(50, total)),
            "checkpoint_every": total,
            "keep_checkpoints": 1,
            "device": resolve_device(device or p.device),
            "progress": False,
            "tensorboard": False,
            "threads": threads,
        },
    }


def warmup_for(steps: int) -> int:
    return max(1, int(round(0.05 * steps)))


def set_steps(raw: dict, steps: int) -> dict:
    """A copy of ``raw`` with ``run.steps`` (and the step-dependent settings) set to ``steps``."""
    raw = copy.deepcopy(raw)
    raw["run"].update(steps=steps, eval_every=steps, checkpoint_every=steps, log_every=max(1, min(50, steps)))
    raw["optim"]["warmup_steps"] = warmup_for(steps)
    return raw


def one_run(raw: dict, name: str, *, steps: int, seed: int, runs_dir: str, threads: int) -> dict:
    """``raw`` (changed in place) as one seeded benchmark run named ``name``: data and run seed,
    ``steps`` with one evaluation and one checkpoint at the end, its folder under ``runs_dir``, no
    progress bar or TensorBoard, ``threads`` torch threads, warm-up at most a tenth of the steps;
    validated."""
    raw["name"] = name
    raw["data"]["seed"] = seed
    raw["run"].update(steps=steps, seed=seed, out_dir=str(Path(runs_dir) / name), eval_every=steps,
                      checkpoint_every=steps, keep_checkpoints=1, log_every=max(1, min(50, steps)),
                      progress=False, tensorboard=False, threads=threads)
    raw["optim"]["warmup_steps"] = max(1, min(raw["optim"]["warmup_steps"], steps // 10))
    validate(raw)
    return raw


def validate(raw: dict):
    from cotrain.config import config_from_dict

    return config_from_dict(raw, origin=f"benchmark config {raw.get('name', '?')!r}")


# ------------------------------------------------------------------------------------ tasks
def available_tasks(tasks: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(kept, dropped)``: spoken-digits is dropped when espeak-ng is missing."""
    from cotrain.data.world import espeak_available

    tasks = list(tasks)
    if "spoken-digits" in tasks and not espeak_available():
        return [t for t in tasks if t != "spoken-digits"], ["spoken-digits"]
    return tasks, []


def espeak_note(dropped: list[str]) -> str:
    if not dropped:
        return ""
    return (f"Note: {', '.join(dropped)} was left out: espeak-ng is not installed on this machine "
            "(install it, e.g. `apt-get install espeak-ng`, to include it).")


def prepare_data(raws: Iterable[dict], extra_tasks: Iterable[dict] = ()) -> float:
    """Generate (or check) the cache of every task the runs read, once, in this process, so the
    workers only load it. Returns the seconds spent."""
    from cotrain.config import TaskConfig
    from cotrain.data.sources import build_task_data

    t0 = time.perf_counter()
    seen = set()
    raws = list(raws)
    pairs = [(raw, t) for raw in raws for t in raw["tasks"]] + [(raws[0], t) for t in extra_tasks]
    for raw, t in pairs:
        cfg = validate(raw)
        key = (repr(t["source"]), repr(raw["model"]["encoders"]), raw["data"]["seed"])
        if key in seen:
            continue
        seen.add(key)
        data = build_task_data(TaskConfig.model_validate(t), cfg)
        if not data.meta.get("from_cache", True):
            print(f"  generated {t['name']} ({len(data.train)} train examples) -> {data.meta.get('cache_path')}", flush=True)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ one run
def run_experiment(
    raw: dict,
    *,
    train: bool = True,
    probe_tasks: Iterable[dict] = (),
    return_model: bool = False,
    probe_epochs: int = 100,
) -> dict:
    """Train the experiment ``raw`` (a config dict) and evaluate it on every task's test split.

    With ``train=False`` the model is only built (seeded, as training would start it): the
    randomly initialised baseline of a probe. ``probe_tasks`` are task-config rows (held-out
    tasks, see :func:`task_entry`) on which a linear probe of the frozen encoders + trunk is
    trained (:func:`cotrain.train.probe.linear_probe`). Returns ``{"name", "results" (task ->
    metric, value, chance, steps, time_s), "params" (parameter_counts), "probes" (task -> val,
    test, chance, ...), "wall_s", "model" (the CPU model when ``return_model``, else None)}``.
    """
    import torch

    from cotrain.config import TaskConfig
    from cotrain.data.sources import build_task_data
    from cotrain.tasks import task_inputs
    from cotrain.train.probe import linear_probe
    from cotrain.train.trainer import Trainer

    t0 = time.perf_counter()
    cfg = validate(raw)
    out_dir = Path(cfg.run.out_dir)
    if train and (out_dir / "config.yaml").is_file():  # a previous run of the same name: start clean
        shutil.rmtree(out_dir)
    trainer = Trainer(cfg)
    results = trainer.fit() if train else {}
    model = trainer.model
    probes = {}
    probe_tasks = list(probe_tasks)
    if probe_tasks and next(model.parameters()).device.type != "cpu":
        model = model.cpu()  # linear_probe feeds CPU batches (it does not move them to the model's device)
    for row in probe_tasks:
        tcfg = TaskConfig.model_validate(row)
        data = build_task_data(tcfg, cfg)
        probes[tcfg.name] = linear_probe(model, data, task_inputs(tcfg), epochs=probe_epochs, seed=cfg.run.seed)
    out = {
        "name": cfg.name,
        "results": results,
        "params": model.parameter_counts(),
        "probes": probes,
        "wall_s": round(time.perf_counter() - t0, 2),
        "model": None,
    }
    if return_model:
        out["model"] = model.to(torch.device("cpu")).eval()
    return out


# ------------------------------------------------------------------------------------ the pool
def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _call(job: tuple[Callable, tuple, dict]) -> Any:
    fn, args, kwargs = job
    return fn(*args, **kwargs)


def run_many(
    jobs: list[tuple[Callable, tuple, dict]],
    *,
    workers: int = 2,
    threads: int = 1,
    label: Callable[[int, Any], str] | None = None,
) -> list[Any]:
    """Run ``(fn, args, kwargs)`` jobs on ``workers`` spawned processes (``threads`` torch threads
    each) and return their results in submission order. ``workers <= 1`` runs them here, in order.
    ``label(i, result)`` gives the line printed when result ``i`` is collected."""
    t0 = time.perf_counter()
    results: list[Any] = []

    def report(i: int, res: Any) -> None:
        if label is not None:
            print(f"  [{i + 1}/{len(jobs)} at {time.perf_counter() - t0:6.0f} s] {label(i, res)}", flush=True)

    if workers <= 1:
        _init_worker(threads)
        for i, job in enumerate(jobs):
            results.append(_call(job))
            report(i, results[-1])
        return results
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_call, job) for job in jobs]
        for i, fut in enumerate(futures):
            results.append(fut.result())
            report(i, results[-1])
    return results


# ------------------------------------------------------------------------------------ results.md
def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r}: use letters, digits, '_', '-', '.' only")
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


RESULTS_PREAMBLE = (
    "# Results\n\n"
    "Every section of this file is written by a script in `benchmarks/` (the command that produced it is\n"
    "stated above its table); nothing here is typed by hand. Re-running a script replaces its own section.\n"
)


def write_section(path: str | Path, name: str, markdown: str) -> Path:
    """Put ``markdown`` between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``path``.

    Creates the file (with a short preamble) or appends the section when missing; otherwise
    replaces only that section's body. Idempotent: writing the same text twice leaves the same
    file. The file is replaced atomically.
    """
    path = Path(path)
    start, end = _markers(name)
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.is_file() else RESULTS_PREAMBLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def command_line(argv: list[str] | None = None) -> str:
    """The exact command, as typed from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *argv[1:]])


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def header(device: str, workers: int, threads: int = 1, argv: list[str] | None = None, when: _dt.datetime | None = None) -> str:
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return (
        f"Command: `{command_line(argv)}` · machine: {machine()} · device: {device_description(device)} "
        f"({workers} worker process{'es' if workers != 1 else ''} × {threads} thread{'s' if threads != 1 else ''}) · "
        f"date: {when.strftime('%Y-%m-%d %H:%M')} UTC"
    )


# ------------------------------------------------------------------------------------ tables
def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(header_row: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header_row) - 1)
    lines = ["| " + " | ".join(header_row) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def bold_best(values: list[float | None], digits: int = 3) -> list[str]:
    """Formatted values with the maximum (every tie) in bold."""
    real = [v for v in values if v is not None]
    best = max(real) if real else None
    out = []
    for v in values:
        s = fmt(v, digits)
        out.append(f"**{s}**" if v is not None and best is not None and fmt(v, digits) == fmt(best, digits) else s)
    return out


def mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def mean_std(xs: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of the per-seed values."""
    xs = list(xs)
    m = mean(xs)
    if len(xs) < 2:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def fmt_ms(xs: Iterable[float], digits: int = 3) -> str:
    """``mean ± std`` of per-seed values."""
    m, sd = mean_std(xs)
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def beyond_noise(a: Iterable[float], b: Iterable[float]) -> bool:
    """BENCHMARK.md's rule: a difference between two arms is a finding only when it exceeds the
    spread of both, i.e. their mean ± std intervals do not overlap."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return abs(ma - mb) > sa + sb


def img_path(out: str | Path, filename: str) -> tuple[Path, str]:
    """Where a plot goes (``img/`` beside the results file) and its link relative to that file."""
    out = Path(out)
    return out.parent / "img" / filename, f"img/{filename}"


# ------------------------------------------------------------------------------------ CLI
def add_common_args(ap: argparse.ArgumentParser, runs_dir: str) -> None:
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small", help="small: 2 CPU cores, ~20 min; full: a GPU")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's steps (e.g. 0.02 for a smoke test)")
    ap.add_argument("--out", default="docs/results.md", help="the Markdown file whose section this script rewrites")
    ap.add_argument("--runs-dir", default=runs_dir, help="folder for the run folders (logs, config, final checkpoint)")
    ap.add_argument("--workers", type=int, default=2, help="parallel worker processes (1: run in this process)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--seed", type=int, default=0, help="run and data seed")
    ap.add_argument("--device", default=None, help="override the preset's device (cpu, cuda, cuda:1, ...)")


def add_seeds_arg(ap: argparse.ArgumentParser, default: list[int]) -> None:
    """``--seeds``: every arm runs once per seed; tables give mean ± std (BENCHMARK.md: at least 3)."""
    ap.add_argument("--seeds", type=int, nargs="+", default=default,
                    help=f"run every arm with each of these seeds and report mean ± std (default {default})")


def check_args(args: argparse.Namespace) -> None:
    if not args.steps_scale > 0:
        raise SystemExit(f"--steps-scale must be > 0, got {args.steps_scale}")
    if args.workers < 1 or args.threads < 1:
        raise SystemExit("--workers and --threads must be >= 1")
    if getattr(args, "seeds", None) is not None and len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds must be distinct, got {args.seeds}")


def save_figure(fig, path: Path) -> None:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt().close(fig)


def publish(out: str | Path, section: str, parts: list[str], echo: list[str], wall: float,
            written: Iterable[Path] = ()) -> None:
    """Write the non-empty ``parts`` as section ``section`` of ``out``, then print ``echo`` (the
    tables and sentences a reader of the console wants) and what was written."""
    write_section(out, section, "\n\n".join(x for x in parts if x))
    for block in echo:
        if block:
            print()
            print(block)
    files = " and ".join([str(out), *map(str, written)])
    print(f"\nwrote section {section} of {files}")
    print(f"total wall time: {wall:.0f} s ({wall / 60:.1f} min)")


def plt():
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
