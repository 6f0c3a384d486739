"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node=2`` (not a test module)."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for `synthetic`

from synthetic import tiny_cfg, tiny_data  # noqa: E402

from cotrain.train.distributed import all_reduce_gradients, exit_distributed  # noqa: E402
from cotrain.train.trainer import Trainer  # noqa: E402


def main(out: str) -> None:
    torch.set_num_threads(1)
    tmp = Path(out).parent
    cfg = tiny_cfg(tmp, tasks=("img", "aud"), schedule={"kind": "alternating"},
                   run={"steps": 12, "checkpoint_every": 12, "eval_every": 1000, "threads": 1})
    trainer = Trainer(cfg, data=tiny_data(("img", "aud")))
    rank, world = trainer.dist.rank, trainer.dist.world_size
    # 1. gradient averaging: rank r holds r + 1 everywhere, a parameter without a gradient is skipped
    p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.full((3,), float(rank + 1))
    all_reduce_gradients([p, q], world)
    averaged = p.grad.tolist()
    # 2. training: same weights on every rank afterwards, different batches per rank
    first = next(trainer.iterators["img"])["label"].tolist()
    init = torch.cat([v.flatten().float() for v in trainer.model.state_dict().values()])
    results = trainer.fit()
    flat = torch.cat([v.flatten().float() for v in trainer.model.state_dict().values()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    firsts = [None] * world
    dist.all_gather_object(firsts, first)
    if rank == 0:
        Path(out).write_text(json.dumps({
            "world": world, "averaged": averaged, "q_grad_is_none": q.grad is None,
            "same_weights": all(torch.equal(gathered[0], g) for g in gathered),
            "trained": float((flat - init).abs().max()),
            "different_batches": firsts[0] != firsts[1],
            "task_steps": trainer.task_steps, "results": sorted(results),
            "checkpoint": str(trainer.last_checkpoint),
        }))
    exit_distributed(0)  # barrier, destroy the group, leave without the C++ teardown


if __name__ == "__main__":
    main(sys.argv[1])
