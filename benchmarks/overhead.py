"""Trainer overhead: cotrain's Trainer vs a bare hand-written PyTorch loop, same model, same batches.

Both loops train the same freshly initialised model (same seed) on the same in-memory data of three
tasks (image, video, audio), one task per step in the same order, with AdamW and gradient clipping.
The trainer runs as a user runs it (``Trainer.fit``: schedule, LR warm-up/decay, loss checks, JSONL +
TensorBoard logs, progress accounting, the checkpoint at the stop; not the end-of-run test
evaluation), the bare loop does only forward / backward / clip / step.

A shared machine's load drifts, so one long run of each (minutes apart) compares different loads.
Instead both loops live for the whole benchmark and train in many short interleaved blocks of
``--block-steps`` steps: bare, trainer, trainer, bare, bare, trainer, ... (the order alternates per
pair, so neither always goes first). Each trainer block is one ``fit(stop_at=...)`` call (it
continues the same run: its checkpoint and log writes at the block's end are charged to the block,
a little more often than in one long run). Each pair gives the ratio trainer steps/s / bare steps/s;
the median of those ratios is the result, with its interquartile range and min-max.

Like the ``cotrain`` command, the script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless a wait policy is
set) before torch loads: with spinning OpenMP threads a busy machine slows CPU training several
fold and the timings swing with the other jobs (see ``cotrain.train.threads``).

Also reported: data-loader throughput (batches/s the BatchIterator delivers) against the training
consumption (steps/s), and peak memory. The last line is ``trainer_vs_bare_ratio=<median ratio>``.

    python benchmarks/overhead.py [--pairs 30] [--block-steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cotrain.train.threads import set_openmp_defaults  # noqa: E402

set_openmp_defaults()  # before torch is imported, as the cotrain command does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cotrain.config import config_from_dict  # noqa: E402
from cotrain.data.arrays import BatchIterator, Split, TaskData  # noqa: E402
from cotrain.model import build_model  # noqa: E402
from cotrain.tasks import specs_from_data  # noqa: E402
from cotrain.train.trainer import Trainer, build_optimizer  # noqa: E402
from paired import paired_ratios  # noqa: E402

TASKS = {"img": "image", "vid": "video", "aud": "audio"}


def make_data(n: int = 512, seed: int = 0) -> dict[str, TaskData]:
    rng = np.random.default_rng(seed)
    shapes = {"image": (3, 32, 32), "video": (4, 3, 32, 32), "audio": (8000,)}
    out = {}
    for name, mod in TASKS.items():
        def split(m):
            x = rng.integers(0, 256, (m, *shapes[mod]), dtype=np.uint8) if mod != "audio" else rng.standard_normal((m, 8000)).astype(np.float32)
            return Split({mod: x, "label": rng.integers(0, 10, m).astype(np.int64)})
        out[name] = TaskData(name, [str(i) for i in range(10)], split(n), split(64), split(64), sample_rate=8000 if mod == "audio" else None)
    return out


def make_cfg(steps: int, out_dir: str, device: str) -> dict:
    return {
        "name": "overhead",
        "tasks": [{"name": n, "inputs": [m], "source": {"kind": "world", "name": "shapes"}, "batch_size": 32}
                  for n, m in TASKS.items()],
        "model": {"dim": 128, "depth": 4, "num_heads": 4},
        "schedule": {"kind": "alternating"},
        "optim": {"lr": 1e-3, "warmup_steps": 10},
        "run": {"steps": steps, "out_dir": out_dir, "progress": False, "log_every": 25, "eval_every": 10**9,
                "checkpoint_every": 10**9, "device": device},
    }


class BareLoop:
    """The hand-written loop: the model, optimizer and batch iterators persist across blocks."""

    def __init__(self, data, steps: int, device: str) -> None:
        cfg = config_from_dict(make_cfg(steps, "unused", device))
        torch.manual_seed(cfg.run.seed)
        self.dev = torch.device(device)
        self.model = build_model(cfg.model, specs_from_data(cfg, data)).to(self.dev)
        self.opt = build_optimizer(self.model, cfg)
        self.iters = {n: BatchIterator(d.train, 32, seed=i) for i, (n, d) in enumerate(data.items())}
        self.names = list(data)
        self.step = 0

    def block(self, steps: int) -> float:
        """Train ``steps`` steps; returns steps/s."""
        t0 = time.perf_counter()
        for _ in range(steps):
            task = self.names[self.step % len(self.names)]
            batch = {k: v.to(self.dev) for k, v in next(self.iters[task]).items()}
            loss = self.model.losses(batch, task)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - t0)


def trainer_block(trainer: Trainer, steps: int) -> float:
    """``fit`` ``steps`` more steps of the same run (never its last step: no test evaluation); steps/s."""
    t0 = time.perf_counter()
    trainer.fit(stop_at=trainer.step + steps)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def loader_throughput(data, seconds: float = 2.0) -> float:
    iters = [BatchIterator(d.train, 32, seed=0) for d in data.values()]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(iters[n % len(iters)])
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=30, help="interleaved (bare, trainer) block pairs")
    ap.add_argument("--block-steps", type=int, default=20, help="training steps per block")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps of each loop first (allocator, kernels)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.pairs < 1 or args.block_steps < 1 or args.warmup < 0:
        raise SystemExit("--pairs and --block-steps must be >= 1, --warmup >= 0")
    data = make_data()
    total = args.warmup + args.pairs * args.block_steps
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # run.steps one past the measured steps: fit() never reaches the end-of-run test evaluation
        # (the bare loop evaluates nothing either). The Trainer comes first: it sets the thread count
        # (run.threads unset: cotrain's default) that the bare loop then uses too.
        trainer = Trainer(config_from_dict(make_cfg(total + 1, tmp, args.device)), data=data)
        bare = BareLoop(data, total, args.device)
        print(f"device={args.device} threads={torch.get_num_threads()} pairs={args.pairs} block_steps={args.block_steps}",
              flush=True)
        bare.block(args.warmup)
        trainer_block(trainer, args.warmup)
        b_rates, t_rates = [], []
        for i in range(args.pairs):
            if i % 2 == 0:
                b_rates.append(bare.block(args.block_steps))
                t_rates.append(trainer_block(trainer, args.block_steps))
            else:
                t_rates.append(trainer_block(trainer, args.block_steps))
                b_rates.append(bare.block(args.block_steps))
            print(f"pair {i:2d}: bare {b_rates[-1]:6.2f} steps/s  trainer {t_rates[-1]:6.2f} steps/s  "
                  f"ratio {t_rates[-1] / b_rates[-1]:.3f}", flush=True)
    summary = paired_ratios(t_rates, b_rates)
    t = statistics.median(t_rates)
    load = loader_throughput(data)
    print(f"bare loop       {statistics.median(b_rates):8.2f} steps/s (median of {args.pairs} blocks)")
    print(f"cotrain Trainer {t:8.2f} steps/s (median of {args.pairs} blocks)")
    print(f"trainer / bare  {summary}")
    print(f"data loader     {load:8.1f} batches/s = {load / t:.0f}x what training consumes")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak host memory {peak_mb:.0f} MB" + (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB" if args.device.startswith("cuda") else ""))
    print(f"wall time {time.perf_counter() - t_start:.0f} s")
    print(f"trainer_vs_bare_ratio={summary.median:.3f}")


if __name__ == "__main__":
    main()
