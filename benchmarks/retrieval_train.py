"""Retrieval training on the world's ``coco-ir``: which loss and which negatives make it generalise.

Trains the E1 small model (``vl_common``'s ``small`` preset: co-attention trunk, dim 64, 1 visual /
2 text layers, regions + text, batch 32) on ``coco-ir`` alone, ``--n-train`` training captions (E1
has 1,000), for ``--steps`` steps, once per seed (which seeds the data too), with the chosen
``tasks[].retrieval`` settings (``--loss``, ``--mining``, ``--negatives``, ``--candidates``,
``--random-negatives``, ``--temperature``; ``--inputs image`` trains on pixels, ``--augment`` adds
the ``image_augment`` transform; ``--set key=value`` any other override). Dynamic Stop-and-Go is off
(one task).

It prints, per seed and as mean ± std over the seeds, recall@1/5/10 on the test pool (100 images
with one caption each: chance R@1 = 1 / pool) in both directions:

- ``joint``: the run's own test evaluation (every caption–image pair through the co-attention
  trunk and the retrieval head, :meth:`cotrain.model.Model.score_pairs`), what the results tables report;
- ``dual``: the cosine of the single-stream states (:meth:`cotrain.model.Model.pooled_single`,
  caption alone vs image alone) - the representation the contrastive loss trains and first-stage
  ranking uses.

    python benchmarks/retrieval_train.py --loss both --seeds 0 1 2 [--out docs/results.md]

With ``--out`` the table goes into that Markdown file (section ``--section``, default RETRIEVAL) with
the command, machine and date. ``--from-json FILE ...`` takes seeds already trained by earlier
invocations with the same settings (their ``--json`` files) instead of training them again.

About 2 min of data generation per seed (50,000 captions with 12 hard candidates each; cached under
the data root) and about 9 min of training per seed at the defaults, one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import vl_common as vc  # noqa: E402

TASK = "coco-ir"
KS = (1, 5, 10)


def retrieval_config(args: argparse.Namespace, seed: int) -> dict:
    """The experiment dict of one run: ``coco-ir`` alone on the preset, with the retrieval settings of ``args``."""
    raw = vc.vl_config(args.preset, [TASK], steps=args.steps, seed=seed, dsg=False, device=args.device,
                       out_dir=str(Path(args.runs_dir) / f"{args.loss}-seed{seed}"), name=f"retrieval-{args.loss}")
    task = raw["tasks"][0]
    task["source"]["n_train"] = args.n_train
    task["retrieval"] = {"loss": args.loss, "mining": args.mining, "negatives": args.negatives,
                         "candidates": args.candidates, "random_negatives": args.random_negatives,
                         "temperature": args.temperature}
    if args.inputs == "image":
        task["inputs"] = ["image", "text"]
    if args.augment:
        task["transforms"] = [{"kind": "image_augment"}]
    from cotrain.config import apply_override

    for assignment in args.set:
        apply_override(raw, assignment)
    return raw


def dual_recall(model, split, batch_size: int = 256) -> dict[str, float]:
    """Recall@K both directions of the single-stream cosine on ``split``'s pool (as the joint evaluation's)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cotrain.encoders import entry
    from cotrain.metrics.retrieval import recall_at_k
    from cotrain.pair_scoring import pool_kind
    from cotrain.train.retrieval_eval import pool_rows, pooled_states

    captions, first, caption_image, _ = pool_rows(split.arrays["image_id"])
    other = pool_kind(model, TASK)

    def states(kind: str, rows: np.ndarray) -> torch.Tensor:
        batch = {k: torch.from_numpy(np.ascontiguousarray(split.column(k, rows))) for k in entry(kind).keys if k in split}
        return F.normalize(pooled_states(model, TASK, batch, kind, batch_size), dim=-1)

    was = model.training
    model.eval()
    scores = states("text", captions) @ states(other, first).T
    model.train(was)
    return recall_at_k(scores, caption_image)


def train_one(raw: dict) -> dict:
    """Train one config; its joint and dual recalls, pool size, chance and wall time."""
    from cotrain.train.trainer import Trainer

    t0 = time.perf_counter()
    trainer = Trainer(common.validate(raw))
    result = trainer.fit()[TASK]
    return {"joint": result["details"], "dual": dual_recall(trainer.model, trainer.data[TASK].test),
            "pool": int(round(1 / result["chance"])), "chance": result["chance"], "n": result["n"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def table(seeds: list[int], runs: list[dict]) -> str:
    cols = [f"{way} {d} R@{k}" for way in ("joint", "dual") for d in ("c2i", "i2c") for k in KS]
    keys = [(way, f"{d}_r{k}") for way in ("joint", "dual") for d in ("c2i", "i2c") for k in KS]
    rows = [[str(s), *[f"{100 * r[w][k]:.1f}" for w, k in keys], str(r["pool"]), f"{100 * r['chance']:.1f}",
             f"{r['wall_s']:.0f}"] for s, r in zip(seeds, runs)]
    rows.append(["mean ± std", *[common.fmt_ms([100 * r[w][k] for r in runs], 1) for w, k in keys],
                 str(runs[0]["pool"]), f"{100 * runs[0]['chance']:.1f}", f"{common.mean(r['wall_s'] for r in runs):.0f}"])
    return common.markdown_table(["seed", *cols, "pool", "chance R@1", "time (s)"], rows)


def build_parser() -> argparse.ArgumentParser:
    """This script's options (``benchmarks/retrieval_mined.py`` builds its runs from them too)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loss", choices=["multiple_choice", "contrastive", "both"], default="both")
    ap.add_argument("--mining", choices=["fixed", "per_epoch"], default="per_epoch")
    ap.add_argument("--negatives", type=int, default=3, help="hard negatives per caption in the multiple choice")
    ap.add_argument("--candidates", type=int, default=12, help="hard candidates kept per caption (per_epoch)")
    ap.add_argument("--random-negatives", type=int, default=1, help="extra negatives from the batch's other images")
    ap.add_argument("--temperature", type=float, default=0.07, help="InfoNCE temperature (contrastive, both)")
    ap.add_argument("--inputs", choices=["regions", "image"], default="regions", help="the visual input")
    ap.add_argument("--augment", action="store_true", help="add the image_augment transform (with --inputs image)")
    ap.add_argument("--steps", type=int, default=6000, help="training steps per run")
    ap.add_argument("--n-train", type=int, default=50000, help="training captions generated (the E1 preset: 1000)")
    ap.add_argument("--preset", choices=sorted(vc.VL_PRESETS), default="small")
    ap.add_argument("--device", default=None, help="override the preset's device (cpu, cuda, ...)")
    ap.add_argument("--workers", type=int, default=1, help="parallel worker processes (1: one run after the other)")
    ap.add_argument("--runs-dir", default="runs/bench/retrieval", help="folder for the run folders")
    ap.add_argument("--json", default=None, help="also write the per-seed results to this JSON file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override applied last, e.g. --set tasks.coco-ir.batch_size=64 (repeatable)")
    ap.add_argument("--out", default=None, help="write the table into this Markdown file (e.g. docs/results.md)")
    ap.add_argument("--section", default="RETRIEVAL", help="the section of --out to (re)write")
    ap.add_argument("--from-json", nargs="+", default=[], metavar="FILE",
                    help="per-seed results of earlier invocations with the same settings (their --json files)")
    common.add_seeds_arg(ap, [0, 1, 2])
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds must be distinct, got {args.seeds}")
    if args.augment and args.inputs != "image":
        raise SystemExit("--augment moves pixels: use it with --inputs image")
    t0 = time.perf_counter()
    earlier = earlier_runs(args)
    todo = [s for s in args.seeds if s not in earlier]
    raws = [retrieval_config(args, s) for s in todo]
    if raws:
        vc.prepare_vl_data(raws)
    fresh = common.run_many([(train_one, (raw,), {}) for raw in raws], workers=args.workers,
                            label=lambda i, r: f"seed {todo[i]}: joint c2i R@1 {100 * r['joint']['c2i_r1']:.1f}, "
                                               f"dual c2i R@1 {100 * r['dual']['c2i_r1']:.1f} ({r['wall_s']:.0f} s)")
    runs = [earlier[s] if s in earlier else fresh[todo.index(s)] for s in args.seeds]
    settings = ", ".join(f"{k} {getattr(args, k)}" for k in ("loss", "mining", "negatives", "candidates", "random_negatives",
                                                             "temperature", "inputs", "augment", "n_train", "steps"))
    settings += "".join(f", {a}" for a in args.set)
    print(f"\n{TASK}, {args.preset} preset, {settings}; recall in % on the test pool\n")
    print(table(args.seeds, runs))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "runs": dict(zip(map(str, args.seeds), runs))}, indent=1))
    wall = time.perf_counter() - t0
    if args.out:
        c2i = [100 * r["joint"]["c2i_r1"] for r in runs]
        verdict = (f"Caption→image R@1 {common.fmt_ms(c2i, 1)}% on a pool of {runs[0]['pool']} (chance "
                   f"{100 * runs[0]['chance']:.1f}%); the issue's target is at least 30%: "
                   + ("met" if common.mean(c2i) >= 30 else "not met on the mean") + ".")
        common.write_section(args.out, args.section, "\n\n".join([
            f"## Retrieval that learns: `{TASK}` ({args.loss})",
            common.header(args.device or "cpu", args.workers, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
            f"Settings: {args.preset} preset, {settings}. Recall in % on the test pool, `joint` = the co-attention "
            "trunk and the retrieval head on every pair (what the result tables report), `dual` = the cosine of "
            "the single-stream states (what the contrastive loss trains; the first stage of `rerank_top_k`).",
            table(args.seeds, runs),
            verdict,
            f"Wall time of this invocation: {wall:.0f} s" + (f"; seeds {sorted(earlier)} were read from earlier "
                                                              f"invocations' --json files (their training time is in the "
                                                              "time column)." if earlier else "."),
        ]))
        print(f"wrote section {args.section} of {args.out}")
    print(f"\ntotal wall time: {wall:.0f} s")
    return 0


IGNORED = {"seeds", "json", "runs_dir", "workers", "from_json", "out", "section"}


def earlier_runs(args: argparse.Namespace) -> dict[int, dict]:
    """``{seed: run}`` from ``--from-json`` files whose settings equal this invocation's (the cache
    folder override ``data.root=`` aside); a file with other settings is an error naming the difference."""
    def norm(settings: dict) -> dict:
        d = {k: v for k, v in settings.items() if k not in IGNORED}
        n_key = f"tasks.{TASK}.source.n_train="
        for a in d.get("set", []):
            if a.startswith(n_key):  # the training-set size given as an override
                d["n_train"] = int(a[len(n_key):])
        d["set"] = [a for a in d.get("set", []) if not a.startswith(("data.root=", n_key))]
        return d

    mine = norm(vars(args))
    out: dict[int, dict] = {}
    for f in args.from_json:
        saved = json.loads(Path(f).read_text())
        theirs = norm(saved["settings"])
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            raise SystemExit(f"{f}: settings differ from this invocation's in {diff}")
        out.update({int(s): r for s, r in saved["runs"].items() if int(s) in args.seeds})
    return out


if __name__ == "__main__":
    raise SystemExit(main())
