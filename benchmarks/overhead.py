"""Trainer overhead: cotrain's Trainer vs a bare hand-written PyTorch loop, same model, same batches.

Both loops train the same freshly initialised model (same seed) on the same in-memory data of three
tasks (image, video, audio), one task per step in the same order, with AdamW and gradient clipping.
The trainer runs as a user runs it (``Trainer.fit``: schedule, LR warm-up/decay, loss checks, JSONL +
TensorBoard logs, progress accounting, a checkpoint at the end; not the end-of-run test evaluation), the bare loop does only
forward / backward / clip / step. Runs are interleaved (bare, trainer, bare, trainer, ...) and the
median of each is compared, to cancel drift on a shared machine.

Also reported: data-loader throughput (batches/s the BatchIterator delivers) against the training
consumption (steps/s), and peak memory. The last line is ``trainer_vs_bare_ratio=<ratio>``.

    python benchmarks/overhead.py [--steps 150] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import numpy as np
import torch

from cotrain.config import config_from_dict
from cotrain.data.arrays import BatchIterator, Split, TaskData
from cotrain.model import build_model
from cotrain.train.trainer import Trainer, build_optimizer, task_specs

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
        "tasks": [{"name": n, "source": {"kind": "world", "name": "shapes"}, "batch_size": 32} for n in TASKS],
        "model": {"dim": 128, "depth": 4, "num_heads": 4},
        "schedule": {"kind": "alternating"},
        "optim": {"lr": 1e-3, "warmup_steps": 10},
        "run": {"steps": steps, "out_dir": out_dir, "progress": False, "log_every": 25, "eval_every": 10**9,
                "checkpoint_every": 10**9, "device": device},
    }


def run_trainer(data, steps: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        # run.steps one past the measured steps: fit() trains `steps` steps and writes its checkpoint at the
        # stop, but does not run the end-of-run test evaluation (the bare loop evaluates nothing either)
        cfg = config_from_dict(make_cfg(steps + 1, tmp, device))
        trainer = Trainer(cfg, data=data)
        t0 = time.perf_counter()
        trainer.fit(stop_at=steps)
        return steps / (time.perf_counter() - t0)


def run_bare(data, steps: int, device: str) -> float:
    cfg = config_from_dict(make_cfg(steps, "unused", device))
    torch.manual_seed(cfg.run.seed)
    dev = torch.device(device)
    model = build_model(cfg.model, task_specs(cfg, data)).to(dev)
    opt = build_optimizer(model, cfg)
    iters = {n: BatchIterator(d.train, 32, seed=i) for i, (n, d) in enumerate(data.items())}
    names = list(data)
    t0 = time.perf_counter()
    for step in range(steps):
        task = names[step % len(names)]
        batch = {k: v.to(dev) for k, v in next(iters[task]).items()}
        loss = model.losses(batch, task)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if dev.type == "cuda":
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
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    data = make_data()
    print(f"device={args.device} threads={torch.get_num_threads()} steps={args.steps} repeats={args.repeats}")
    run_bare(data, 10, args.device)  # warm-up (allocator, kernels)
    bare, trainer = [], []
    for r in range(args.repeats):
        bare.append(run_bare(data, args.steps, args.device))
        trainer.append(run_trainer(data, args.steps, args.device))
        print(f"repeat {r}: bare {bare[-1]:.2f} steps/s  trainer {trainer[-1]:.2f} steps/s")
    b, t = statistics.median(bare), statistics.median(trainer)
    load = loader_throughput(data)
    print(f"bare loop       {b:8.2f} steps/s (median)")
    print(f"cotrain Trainer {t:8.2f} steps/s (median)")
    print(f"data loader     {load:8.1f} batches/s = {load / t:.0f}x what training consumes")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak host memory {peak_mb:.0f} MB" + (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB" if args.device.startswith("cuda") else ""))
    print(f"trainer_vs_bare_ratio={t / b:.3f}")


if __name__ == "__main__":
    main()
