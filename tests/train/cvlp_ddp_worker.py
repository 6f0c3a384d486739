"""Run by tests/train/test_cvlp.py under ``torchrun --nproc_per_node=2`` (not a test module): each
rank enqueues its own keys for two steps; every rank's queue must hold all of them in rank order."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from cotrain.train.distributed import exit_distributed, init_distributed
from cotrain.train.key_queue import KeyQueue, gather_slots, step_slots


def main(out: str) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    queue = KeyQueue(36, 4)  # 2 steps × 2 ranks × 9 slots (batch_size 3 × 3 regions; this batch has 2 rows)
    for step in range(2):
        keys = torch.full((2, 3, 4), float(10 * step + info.rank + 1))
        mask = torch.ones(2, 3, dtype=torch.bool)
        mask[0, 2] = info.rank == 0
        queue.enqueue(*gather_slots(*step_slots(keys, mask, 9), info))
    mine = torch.cat([queue.keys.flatten(), queue.valid.float()])
    parts = [torch.zeros_like(mine) for _ in range(info.world_size)]
    dist.all_gather(parts, mine)
    if info.rank == 0:
        Path(out).write_text(json.dumps({
            "ptr": queue.ptr, "keys": queue.keys[:, 0].tolist(), "valid": queue.valid.tolist(),
            "same_on_every_rank": all(torch.equal(parts[0], p) for p in parts),
        }))
    exit_distributed(0)


if __name__ == "__main__":
    main(sys.argv[1])
