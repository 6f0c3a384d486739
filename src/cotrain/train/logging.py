"""Run logs: one JSON object per line in ``RUN/log.jsonl``, mirrored to TensorBoard.

Each record has ``kind`` (``train``, ``eval``, ``event``), ``step`` and flat scalar fields, e.g.
``{"kind": "train", "step": 50, "task": "shapes", "loss/shapes": 1.23, "lr": 0.001, "steps_per_s": 14.2}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class RunLogger:
    def __init__(self, out_dir: str | Path, tensorboard: bool = True, append: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.out_dir / "log.jsonl", "a" if append else "w", buffering=1)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tb"))
            except ImportError:  # tensorboard is a declared dependency; stay usable without it
                self._tb = None

    def log(self, kind: str, step: int, **fields: Any) -> dict:
        record = {"kind": kind, "step": int(step), "time": round(time.time(), 3), **fields}
        self._fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, val in fields.items():
                if isinstance(val, (int, float)) and not isinstance(val, bool):
                    self._tb.add_scalar(f"{kind}/{key}", val, step)
        return record

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_log(path: str | Path) -> list[dict]:
    """All records of a ``log.jsonl`` (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
