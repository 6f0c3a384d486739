"""Shared machine: two training processes at once, each one's throughput against a lone run.

Each variant runs the same small training alone, then as two processes started together, and
reports each paired process's steps/s divided by the lone run's: 0.5 means "half speed each" (the
machine is shared fairly, nothing is lost), much less means the two processes' threads fight.
Every run is a fresh ``python`` process that starts as the ``cotrain`` command does (OpenMP
defaults set before torch is imported), loads the cached data (generated first, in this process,
so generation is not timed), builds the Trainer, trains ``--warmup`` steps, waits until its
partner is warm too, then times ``--steps`` training steps (``Trainer.train_step``; fewer when
``--max-seconds`` run out, so a collapsed variant cannot take an hour). The lone and paired runs of
every variant are repeated ``--repeats`` times, interleaved; each paired process's steps/s is divided
by the lone run's of the same repeat (taken just before, under nearly the same outside load) and
the median of those ratios is reported, with their min-max.

A variant is ``THREADS[/spin]``: ``THREADS`` is ``run.threads`` (``default``: unset, cotrain's
choice); ``/spin`` sets ``GOMP_SPINCOUNT=300000``, libgomp's own busy-wait when no wait policy is
given, i.e. what training did before cotrain set ``OMP_WAIT_POLICY=PASSIVE``. The last line is
``shared_fraction=<the smaller of the two processes' median pair/lone ratios, over the variants
without /spin>``.

    python benchmarks/shared_machine.py [--steps 100] [--warmup 5] [--repeats 2] [--max-seconds 30]
                                        [--variants default,1,default/spin] [--tasks shapes,motion,sounds]

The model is the demo's (dim 128, depth 4, conv stems, 32 px, 4 frames, 8 kHz audio), trained on
``--tasks`` with the uniform schedule. Data go to ``$COTRAIN_DATA`` (or the default cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from paired import paired_ratios  # noqa: E402

from cotrain.train.threads import affinity_cpus  # noqa: E402

HERE = Path(__file__).resolve()
SPIN_ENV = {"GOMP_SPINCOUNT": "300000"}  # libgomp's busy-wait when no OMP_WAIT_POLICY is set


@dataclass(frozen=True)
class Variant:
    label: str
    threads: int | None  # run.threads (None: unset)
    spin: bool  # GOMP_SPINCOUNT=300000: idle OpenMP threads busy-wait (the pre-PASSIVE behaviour)


def parse_variant(text: str) -> Variant:
    """``default`` / ``N``, optionally followed by ``/spin``."""
    base, _, flag = text.strip().partition("/")
    if flag not in ("", "spin"):
        raise SystemExit(f"--variants: {text!r}: the only suffix is '/spin'")
    if base == "default":
        return Variant(text.strip(), None, flag == "spin")
    if not base.isdigit() or int(base) < 1:
        raise SystemExit(f"--variants: {text!r}: expected 'default' or a thread count >= 1, optionally with '/spin'")
    return Variant(text.strip(), int(base), flag == "spin")


def make_raw(tasks: list[str], threads: int | None, out_dir: str) -> dict:
    """The config dict of one benchmark run: the small preset over ``tasks``, ``threads`` torch
    threads (None: cotrain's default), a run long enough that no evaluation or checkpoint happens."""
    raw = common.base_config("small", tasks=tasks, steps=100_000, out_dir=out_dir, name="shared-machine", threads=threads)
    raw["run"]["device"] = "cpu"
    return raw


# ------------------------------------------------------------------------------------ worker
def worker(cfg_file: str, warmup: int, steps: int, max_seconds: float) -> None:
    """One training process: start as ``cotrain`` does, build, warm up, print ``ready``, wait for a
    line on stdin, time ``steps`` steps (fewer if ``max_seconds`` run out first), print one JSON
    line ``{"steps_per_s", "steps", "threads"}``."""
    from cotrain.train.threads import set_openmp_defaults

    set_openmp_defaults()  # as cotrain.cli.main: before torch is imported
    import torch

    from cotrain.config import config_from_dict
    from cotrain.data.sources import build_all_task_data
    from cotrain.train.trainer import Trainer

    cfg = config_from_dict(json.loads(Path(cfg_file).read_text()))
    data, tok = build_all_task_data(cfg)
    trainer = Trainer(cfg, data=data, tokenizer=tok)
    for _ in range(warmup):
        trainer.train_step()
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    done = 0
    while done < steps and (done == 0 or time.perf_counter() - t0 < max_seconds):
        trainer.train_step()
        done += 1
    dt = time.perf_counter() - t0
    print(json.dumps({"steps_per_s": done / dt, "steps": done, "threads": torch.get_num_threads()}), flush=True)


def run_together(cfg_file: Path, n: int, args: argparse.Namespace, env: dict[str, str]) -> list[dict]:
    """Start ``n`` worker processes, release them together once all are warm; their results."""
    cmd = [sys.executable, str(HERE), "--worker", str(cfg_file), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--max-seconds", str(args.max_seconds)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    try:
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"worker {p.pid} did not get ready (said {line!r}, exit {p.poll()})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            last = p.stdout.readline()
            if p.wait() != 0 or not last:
                raise RuntimeError(f"worker {p.pid} failed (exit {p.returncode})")
            out.append(json.loads(last))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def worker_env(spin: bool) -> dict[str, str]:
    """The workers' environment: this one without a wait-policy choice, plus ``SPIN_ENV`` for /spin."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**env, **SPIN_ENV} if spin else env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="timed training steps per process")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before the timed ones")
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="stop a timed phase after this long even if --steps are not done (a collapsed variant)")
    ap.add_argument("--repeats", type=int, default=2, help="lone + pair measurements per variant (median of the pair/lone ratios)")
    ap.add_argument("--variants", default="default,1,default/spin", help="comma-separated THREADS[/spin] (see above)")
    ap.add_argument("--tasks", default="shapes,motion,sounds", help="comma-separated world tasks (demo model)")
    ap.add_argument("--worker", metavar="CFG_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.warmup, args.steps, args.max_seconds)
        return 0
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1 or not args.max_seconds > 0:
        raise SystemExit("--steps and --repeats must be >= 1, --warmup >= 0, --max-seconds > 0")
    variants = [parse_variant(v) for v in args.variants.split(",") if v.strip()]
    if not any(not v.spin for v in variants):
        raise SystemExit("--variants: give at least one variant without /spin (shared_fraction is over those)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    t_start = time.perf_counter()
    lone: dict[str, list[float]] = {v.label: [] for v in variants}
    pair: dict[str, list[list[float]]] = {v.label: [[], []] for v in variants}
    torch_threads: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for i, v in enumerate(variants):
            raw = make_raw(tasks, v.threads, str(Path(tmp) / f"run-{i}"))
            files[v.label] = Path(tmp) / f"cfg-{i}.json"
            files[v.label].write_text(json.dumps(raw))
        t_data = common.prepare_data([json.loads(f.read_text()) for f in files.values()])
        print(f"data ready in {t_data:.1f} s; {os.cpu_count()} cores (affinity {affinity_cpus()}); "
              f"{args.steps} timed steps per process after {args.warmup} warm-up steps; {args.repeats} repeats", flush=True)
        for r in range(args.repeats):
            for v in variants:
                env = worker_env(v.spin)
                one = run_together(files[v.label], 1, args, env)[0]
                two = run_together(files[v.label], 2, args, env)
                lone[v.label].append(one["steps_per_s"])
                for k in range(2):
                    pair[v.label][k].append(two[k]["steps_per_s"])
                torch_threads[v.label] = one["threads"]
                capped = " (time cap)" if min(one["steps"], *(t["steps"] for t in two)) < args.steps else ""
                print(f"  repeat {r} {v.label:>14}: lone {one['steps_per_s']:6.2f} steps/s, "
                      f"pair {two[0]['steps_per_s']:6.2f} / {two[1]['steps_per_s']:6.2f} steps/s{capped}", flush=True)
    rows, fractions = [], []
    for v in variants:
        # each pair run against the lone run just before it (same repeat: nearly the same outside load)
        frac = [paired_ratios(pair[v.label][k], lone[v.label]) for k in range(2)]
        if not v.spin:
            fractions += [f.median for f in frac]
        rows.append([
            v.label, str(torch_threads[v.label]), f"{statistics.median(lone[v.label]):.2f}",
            " / ".join(f"{statistics.median(x):.2f}" for x in pair[v.label]),
            " / ".join(f"{f.median:.2f}" for f in frac),
            f"{min(f.low for f in frac):.2f}-{max(f.high for f in frac):.2f}",
        ])
    print()
    print(common.markdown_table(["variant", "torch threads", "lone steps/s", "pair steps/s (each)",
                                 "pair / lone (each, median)", "pair / lone (min-max)"], rows))
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    print(f"shared_fraction={min(fractions):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
