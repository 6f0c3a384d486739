"""Inference throughput: ``cotrain.load(...).predict`` on a list of VQA questions against ``cotrain eval``
on the same questions (issue: scoring 9,673 questions one by one took 344 s against 28 s for eval).

A small co-attention model is trained for a few steps on the world's ``vqa`` task (the weights do
not matter for speed), its checkpoint is loaded as a user would load it, and the test questions are
scored three ways:

- ``eval``: :func:`cotrain.train.evaluate.evaluate_task` on the test split (what ``cotrain eval`` runs);
- ``predict``: ``Predictor.predict(task, examples, batch_size=64)`` on one example per question,
  ``{"image": "<scene>.npz", "text": question}``: region files on disk, read and packed by the data
  layer's loaders, as a user's inputs would be;
- ``predict, one by one``: the same, one call per question (a subset), for reference.

The last line is ``predict_vs_eval=<predict seconds per question / eval seconds per question>``
(goal: at most 2).

    python benchmarks/predict_throughput.py [--questions 2000] [--one-by-one 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=2000, help="test questions to score")
    ap.add_argument("--one-by-one", type=int, default=200, help="questions scored one call each (reference)")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)

    import torch

    import cotrain
    from cotrain.config import config_from_dict
    from cotrain.data.sources import build_all_task_data
    from cotrain.train.evaluate import evaluate_task
    from cotrain.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        raw = {
            "name": "predict-throughput",
            "data": {"root": str(Path(tmp) / "data")},
            "tasks": [{"name": "vqa", "batch_size": 32,
                       "source": {"kind": "world", "name": "vqa", "n_train": 200, "n_val": 50, "n_test": args.questions}}],
            "model": {"trunk": "coattention", "dim": 64, "num_heads": 4, "task_tokens": "dataset",
                      "coattention": {"v_layers": 1, "t_layers": 2},
                      "encoders": {"text": {"max_len": 32, "vocab_size": 500}, "regions": {"max_regions": 12}}},
            "run": {"steps": 20, "out_dir": str(Path(tmp) / "run"), "progress": False, "tensorboard": False,
                    "eval_every": 1000, "checkpoint_every": 20},
        }
        cfg = config_from_dict(raw)
        data, tok = build_all_task_data(cfg)
        Trainer(cfg, data=data, tokenizer=tok).fit()
        model = cotrain.load(cfg.run.out_dir)
        test = data["vqa"].test
        n = len(test)

        # the user's inputs: one region file per scene (pixel boxes, as a detector writes them)
        files = Path(tmp) / "regions"
        files.mkdir()
        size = float(data["vqa"].meta.get("image_size") or 48)
        ids = test.column("image_id")
        examples = []
        for row in range(n):
            path = files / f"{int(ids[row])}.npz"
            if not path.exists():
                v = test.take(np.array([row]))
                m = v["region_mask"][0].numpy().astype(bool)
                np.savez(path, features=v["regions"][0].numpy()[m].astype(np.float32),
                         boxes=v["boxes"][0].numpy()[m] * size, image_w=size, image_h=size)
            examples.append({"image": str(path), "text": str(test.arrays["text_raw"][row])})

        t0 = time.perf_counter()
        evaluate_task(model.model, "vqa", data["vqa"], "vqa", "test", args.batch_size)
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        batched = model.predict("vqa", examples, batch_size=args.batch_size)
        t_pred = time.perf_counter() - t0
        k = min(args.one_by_one, n)
        t0 = time.perf_counter()
        single = [model.predict("vqa", ex)[0] for ex in examples[:k]]
        t_one = time.perf_counter() - t0
        same = sum(a["label"] == b["label"] for a, b in zip(batched[:k], single))

    rows = [
        ["eval (`evaluate_task`, the split in memory)", f"{n:,}", f"{t_eval:.2f}", f"{n / t_eval:,.0f}"],
        [f"predict, batches of {args.batch_size} (region files)", f"{n:,}", f"{t_pred:.2f}", f"{n / t_pred:,.0f}"],
        ["predict, one call per question", f"{k:,}", f"{t_one:.2f}", f"{k / t_one:,.0f}"],
    ]
    print(common.header("cpu", 1, threads=torch.get_num_threads(), argv=[sys.argv[0], *(argv or sys.argv[1:])]))
    print()
    print(common.markdown_table(["path", "questions", "seconds", "questions / s"], rows,
                                ["---", "---:", "---:", "---:"]))
    print(f"\nbatched and one-by-one predictions agree on {same} of {k} questions")
    ratio = (t_pred / n) / (t_eval / n)
    print(f"predict_vs_eval={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
