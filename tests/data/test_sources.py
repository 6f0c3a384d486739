"""``build_all_task_data`` for a caption pretraining task: what the trainer's first batch holds."""

from __future__ import annotations

import numpy as np
import torch

from cotrain.config import config_from_dict
from cotrain.data.arrays import BatchIterator
from cotrain.data.sources import build_all_task_data
from cotrain.data.world.vl import REGION_DIM


def test_captions_world_task_loads_for_the_trainer(tmp_path):
    cfg = config_from_dict({
        "data": {"root": str(tmp_path / "data"), "clean": True},
        "tasks": [{"name": "cc", "batch_size": 4,
                   "source": {"kind": "world", "name": "captions", "n_train": 10, "n_val": 4, "n_test": 4},
                   "transforms": [{"kind": "match_pairs"}, {"kind": "mask_text"}, {"kind": "mask_regions"}]}],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 2,
                  "heads": {"cc": {"type": "pretrain", "objectives": ["mlm", "itm", "mrm"], "mrm_target": "kl"}},
                  "encoders": {"text": {"max_len": 40, "vocab_size": 200}, "regions": {"max_regions": 12},
                               "image": {"image_size": 48}}},
        "run": {"out_dir": str(tmp_path / "run")},
    })
    data, tokenizer = build_all_task_data(cfg)
    d = data["cc"]
    assert tokenizer is not None and d.meta["head_type"] == "pretrain" and d.meta["region_dim"] == REGION_DIM
    assert d.inputs == ("image", "text", "regions") and len(d.class_names) == 7
    batch = next(BatchIterator(d.train, cfg.tasks[0].batch_size, seed=0))
    assert set(batch) == {"text", "image_id", "image", "regions", "boxes", "region_mask", "region_classes"}
    b, r = 4, 12
    expected = {"text": (torch.int64, (b, 40)), "image_id": (torch.int64, (b,)),
                "image": (torch.uint8, (b, 3, 48, 48)), "regions": (torch.float16, (b, r, REGION_DIM)),
                "boxes": (torch.float32, (b, r, 4)), "region_mask": (torch.bool, (b, r)),
                "region_classes": (torch.float32, (b, r, 7))}
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == shape, key
    assert (batch["text"][:, 0] > 0).all() and (batch["text"] == 0).any()  # 0 = padding
    mask = batch["region_mask"]
    torch.testing.assert_close(batch["region_classes"][mask].sum(-1), torch.ones(int(mask.sum())))
    assert (batch["region_classes"][~mask] == 0).all() and len(set(batch["image_id"].tolist())) == b
    assert np.isin(batch["image_id"].numpy(), d.train.arrays["image_id"]).all()
