"""A tiny learnable detection task (no world generation): 1-2 filled squares per 32x32 image on a
dark background; class = colour (red / blue), attribute = size (small / large)."""

from __future__ import annotations

import numpy as np

from cotrain.config import config_from_dict
from cotrain.data.arrays import Split, TaskData
from cotrain.data.ragged import Ragged

SIZE = 32
COLOURS = {0: (220, 40, 40), 1: (40, 80, 230)}


def detection_split(n: int, rng: np.random.Generator, offset: int = 0) -> Split:
    images = np.full((n, 3, SIZE, SIZE), 20, np.uint8)
    boxes, classes, attrs = [], [], []
    for i in range(n):
        rows_b, rows_c, rows_a = [], [], []
        taken = np.zeros((SIZE, SIZE), bool)
        for _ in range(int(rng.integers(1, 3))):
            big = int(rng.integers(0, 2))
            side = 12 if big else 7
            for _try in range(20):
                x0, y0 = (int(v) for v in rng.integers(0, SIZE - side + 1, 2))
                if not taken[y0 : y0 + side, x0 : x0 + side].any():
                    break
            else:
                continue
            taken[y0 : y0 + side, x0 : x0 + side] = True
            c = int(rng.integers(0, 2))
            images[i, :, y0 : y0 + side, x0 : x0 + side] = np.array(COLOURS[c], np.uint8)[:, None, None]
            rows_b.append([(x0 + side / 2) / SIZE, (y0 + side / 2) / SIZE, side / SIZE, side / SIZE])
            rows_c.append(c)
            rows_a.append(big)
        boxes.append(np.array(rows_b, np.float32).reshape(-1, 4))
        classes.append(np.array(rows_c, np.int64))
        attrs.append(np.array(rows_a, np.int64))
    return Split({
        "image": images,
        "target_boxes": Ragged.from_rows(boxes, np.float32, (4,)),
        "target_classes": Ragged.from_rows(classes, np.int64),
        "target_attributes": Ragged.from_rows(attrs, np.int64),
        "orig_size": np.full((n, 2), SIZE, np.int64),
        "image_id": np.arange(offset, offset + n, dtype=np.int64),
    })


def detection_task(name: str = "det", n: int = 128, seed: int = 0) -> TaskData:
    rng = np.random.default_rng(seed)
    splits = [detection_split(m, rng, off) for m, off in ((n, 0), (32, 10_000), (32, 20_000))]
    return TaskData(name, ["red", "blue"], *splits,
                    meta={"head_type": "detect", "attribute_names": ["small", "large"]})


def unit_cfg(tmp_path, *, steps: int = 40, shared_decoder: bool = True, task_tokens: str = "dataset", **run):
    """The UniT shape in miniature: a conv backbone, per-input encoders, a DETR decoder with task queries,
    a detection task and an image classification task."""
    return config_from_dict({
        "name": "unit-tiny",
        "tasks": [
            {"name": "det", "inputs": ["image"], "source": {"kind": "world", "name": "shapes"}, "batch_size": 8,
             "queries": 6},
            {"name": "img", "inputs": ["image"], "source": {"kind": "world", "name": "shapes"}, "batch_size": 8,
             "queries": 2},
        ],
        "model": {"trunk": "encoder_decoder", "dim": 32, "num_heads": 2, "task_tokens": task_tokens,
                  "encoder_decoder": {"encoder_layers": 1, "decoder_layers": 2, "shared_decoder": shared_decoder},
                  "encoders": {"image": {"image_size": SIZE, "stem": "backbone", "backbone_widths": [16, 32],
                                         "backbone_stride": 4}},
                  "heads": {"img": {"mlp": True}}},
        "schedule": {"kind": "alternating"},
        "optim": {"lr": 2e-3, "warmup_steps": 5},
        "run": {"steps": steps, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 1000, "log_every": 5, "checkpoint_every": 20, **run},
    })
