"""Retrieval pool evaluation speed: a COCO-test-sized pool (1,000 images x 5,000 captions) scored by
the width-64 co-attention model of the V&L ``small`` preset (issue: a 1,391 x 6,955 pool took 60 min
at ~2,700 pairs/s, without progress output; goal: 1,000 x 5,000 in under 5 min on 2 CPU cores).

The model has random weights (speed does not depend on them) and the pool is synthetic, in the
world's shapes: per image 12 region features of 111 floats with boxes (6-12 real), per caption
14-18 token ids. The pool goes through :func:`cotrain.train.retrieval_eval.evaluate_retrieval`, the
path ``cotrain eval`` and the trainer take, twice:

- ``full``: the full trunk on every (caption, image) pair;
- ``rerank``: a pooled-state first stage, then the full trunk on each caption's (and each
  image's) top k (``tasks[].retrieval.rerank_top_k``).

Each row gives the pairs through the full trunk, their rate, and the pool's wall time (encoding and
ranking included). A pool smaller than 1,000 x 5,000 (``--images``) is extrapolated to it by the
full run's pairs/s; the last line is ``full_pool_s=<seconds for 1,000 x 5,000 with the full trunk>``.
Like the ``cotrain`` command, the script sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported.

    OMP_NUM_THREADS=2 python benchmarks/retrieval_eval.py [--images 1000] [--rerank-top-k 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
from cotrain.train.threads import set_openmp_defaults  # noqa: E402

set_openmp_defaults()  # before torch is imported, as the cotrain command does (idle OpenMP threads sleep)

TARGET_IMAGES, CAPTIONS_PER_IMAGE = 1000, 5
REGIONS, REGION_DIM, CAPTION_LEN = 12, 111, (14, 18)


def build_model(preset: str = "small"):
    """The co-attention model of the V&L preset (``vl_common.VL_PRESETS``) with one retrieval task."""
    import torch
    import vl_common

    from cotrain.model import build_model as build
    from cotrain.tasks import TaskSpec

    raw = vl_common.vl_config(preset, ["coco-ir"], out_dir="unused", name="retrieval-eval", device="cpu")
    cfg = common.validate(raw)
    spec = TaskSpec("coco-ir", ("regions", "text"), "retrieval", "retrieval", 1, "recall", region_dim=REGION_DIM)
    torch.manual_seed(0)
    return build(cfg.model, [spec], vocab_size=cfg.model.encoders.text.vocab_size).eval(), cfg


def synthetic_pool(images: int, per_image: int = CAPTIONS_PER_IMAGE, vocab: int = 1000, seed: int = 0):
    """A test split in the world's layout: one caption per row, its image's regions repeated per row."""
    from cotrain.data.arrays import Split

    rng = np.random.default_rng(seed)
    n = images * per_image
    image_of = np.repeat(np.arange(images), per_image)
    feats = rng.random((images, REGIONS, REGION_DIM), dtype=np.float32)
    xy = rng.random((images, REGIONS, 2), dtype=np.float32) * 0.6
    boxes = np.concatenate([xy, xy + 0.1 + 0.3 * rng.random((images, REGIONS, 2), dtype=np.float32)], -1)
    mask = np.arange(REGIONS)[None, :] < rng.integers(6, REGIONS + 1, images)[:, None]
    lengths = rng.integers(CAPTION_LEN[0], CAPTION_LEN[1] + 1, n)
    text = rng.integers(5, vocab, (n, CAPTION_LEN[1]))
    text[np.arange(CAPTION_LEN[1])[None, :] >= lengths[:, None]] = 0
    return Split({"text": text.astype(np.int64), "image_id": image_of, "label": np.zeros(n, dtype=np.int64),
                  "regions": feats[image_of], "boxes": boxes[image_of], "region_mask": mask[image_of]})


def benchmark(images: int = TARGET_IMAGES, per_image: int = CAPTIONS_PER_IMAGE, rerank_top_k: int | None = 20,
              chunk_size: int = 2048, preset: str = "small", progress: bool = False) -> list[dict]:
    """One row per scoring (``full``, then ``rerank`` when ``rerank_top_k``): ``scoring``, ``images``,
    ``captions``, ``pairs`` (through the full trunk), ``pairs_per_s``, ``seconds`` (the pool's wall
    time), ``c2i_r1`` and the evaluation's result itself (``result``)."""
    from cotrain.config import RetrievalConfig
    from cotrain.train.retrieval_eval import evaluate_retrieval

    model, cfg = build_model(preset)
    split = synthetic_pool(images, per_image, vocab=cfg.model.encoders.text.vocab_size)
    rows = []
    for name, k in [("full", None)] + ([("rerank", rerank_top_k)] if rerank_top_k else []):
        t0 = time.perf_counter()
        r = evaluate_retrieval(model, "coco-ir", split, len(split), split="test", chunk_size=chunk_size,
                               retrieval=RetrievalConfig(rerank_top_k=k), progress=progress)
        rows.append({"scoring": name if k is None else f"{name} top {k}", "images": r["pool"]["images"],
                     "captions": r["pool"]["captions"], "pairs": r["pairs"], "pairs_per_s": r["pairs_per_s"],
                     "seconds": time.perf_counter() - t0, "c2i_r1": r["value"], "result": r})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=TARGET_IMAGES, help="images in the pool (5 captions each)")
    ap.add_argument("--rerank-top-k", type=int, default=20, help="k of the re-ranked run (0: skip it)")
    ap.add_argument("--chunk", type=int, default=2048, help="pairs per trunk pass")
    ap.add_argument("--preset", default="small", help="the V&L preset whose model is built (vl_common.VL_PRESETS)")
    ap.add_argument("--progress", action="store_true", help="show the pool's progress bar")
    args = ap.parse_args(argv)

    import torch

    rows = benchmark(args.images, rerank_top_k=args.rerank_top_k or None, chunk_size=args.chunk,
                     preset=args.preset, progress=args.progress)
    print(common.header("cpu", 1, torch.get_num_threads(), argv))
    print()
    table = [[r["scoring"], f"{r['images']:,} x {r['captions']:,}", f"{r['pairs']:,}", f"{r['pairs_per_s']:,.0f}",
              f"{r['seconds']:.1f}"] for r in rows]
    print(common.markdown_table(["scoring", "pool (images x captions)", "pairs through the trunk", "pairs/s",
                                 "pool time (s)"], table))
    full = rows[0]
    target_pairs = TARGET_IMAGES * TARGET_IMAGES * CAPTIONS_PER_IMAGE
    full_pool_s = full["seconds"] if full["pairs"] == target_pairs else target_pairs / full["pairs_per_s"]
    if full["pairs"] != target_pairs:
        print(f"\nextrapolated to {TARGET_IMAGES:,} x {TARGET_IMAGES * CAPTIONS_PER_IMAGE:,} by the full run's pairs/s "
              f"({target_pairs:,} pairs; encoding and ranking left out)")
    print(f"full_pool_s={full_pool_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
