"""Retrieval with hard negatives mined by a trained model (12-in-1's offline mining) on ``coco-ir``.

Per seed: take the ``retrieval_train.py`` run trained with the data's own hard candidates (the
world's: images sharing the most attributes with the caption's on which the caption is false) -
training it first when ``--base-runs-dir`` lacks it -; mine each training caption's 12 hard
candidates with it (``cotrain data mine RUN --task coco-ir``, the command users run); train a fresh
model with the same settings drawing its negatives from the mined file
(``tasks.coco-ir.retrieval.mined``). Prints recall@1/5/10 of both arms on the test pool, mean ± std
over the seeds, and, because the world knows every caption's truth, the share of each arm's
candidates the caption is actually true of (false negatives; over ``--check-rows`` sampled rows).

    python benchmarks/retrieval_mined.py --seeds 0 1 2 --base-json runs/bench/retrieval/both_50k_6k.json \\
        [--out docs/results.md]

``--base-json``: the base arm's results from an earlier ``retrieval_train.py --json`` with the same
settings (else they are read from the base runs' ``results.json``; a missing base run is trained).
About 40 s of mining and 9 min of training per seed at the defaults (one CPU thread per worker).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import retrieval_train as rt  # noqa: E402
import vl_common as vc  # noqa: E402

TASK = rt.TASK


def false_negative_rate(seed: int, n_train: int, caption_image_id, candidate_id, rows: int,
                        image_size: int = 48) -> float:
    """The share of the candidates of ``rows`` sampled training captions (``caption_image_id [N]``,
    ``candidate_id [N, C]``, -1: none; ``n_train`` captions generated) that their caption is true
    of, by the world's own facts."""
    import numpy as np

    from cotrain.data.world.common import SPLIT_OFFSETS, example_rng, task_seed
    from cotrain.data.world.vl import retrieval, task_stream, vl_scene

    n = len(caption_image_id)
    gen = np.asarray(task_stream(TASK, seed, image_size).ids("train", n_train))
    row_of = {int(i): r for r, i in enumerate(gen)}
    ts = task_seed(seed, TASK)
    true = total = 0
    for r in np.random.default_rng(0).choice(n, min(rows, n), replace=False):
        image = int(caption_image_id[r])
        _, facts = retrieval.CAPTIONS[TASK](vl_scene(seed, image, image_size),
                                            example_rng(ts, SPLIT_OFFSETS["train"] + row_of[image]))
        for c in candidate_id[r][candidate_id[r] >= 0]:
            total += 1
            true += bool(retrieval.caption_possible(vl_scene(seed, int(c), image_size), facts))
    return true / max(total, 1)


def mine(run: Path, out: Path) -> dict:
    """``cotrain data mine RUN --task coco-ir --out OUT`` as a user runs it; its JSON report."""
    from cotrain.cli import main as cli

    report = out.with_suffix(".json")
    code = cli(["data", "mine", str(run), "--task", TASK, "--out", str(out), "--json", str(report), "--quiet"])
    if code:
        raise SystemExit(f"cotrain data mine {run} failed with exit code {code}")
    return json.loads(report.read_text())


def base_result(run: Path) -> dict:
    """The base arm's figures of a finished ``retrieval_train`` run (joint recall from its results.json)."""
    res = json.loads((run / "results.json").read_text())
    r = res["results"][TASK] if "results" in res else res[TASK]
    return {"joint": r["details"], "pool": int(round(1 / r["chance"])), "chance": r["chance"], "n": r["n"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-runs-dir", default="runs/bench/retrieval/6k", help="where the base runs are (or go)")
    ap.add_argument("--base-json", default=None, help="the base arm's per-seed results (retrieval_train.py --json)")
    ap.add_argument("--runs-dir", default="runs/bench/retrieval/mined", help="mined files and the mined arm's runs")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--check-rows", type=int, default=300, help="sampled captions for the false-negative share")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the table into this Markdown file (e.g. docs/results.md)")
    ap.add_argument("--section", default="RETRIEVAL-MINED")
    common.add_seeds_arg(ap, [0, 1, 2])
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    common_args = ["--steps", str(args.steps), "--n-train", str(args.n_train)]
    base_args = rt.build_parser().parse_args([*common_args, "--runs-dir", args.base_runs_dir])
    base_raws = {s: rt.retrieval_config(base_args, s) for s in args.seeds}
    vc.prepare_vl_data(list(base_raws.values()))
    runs = {s: Path(raw["run"]["out_dir"]) for s, raw in base_raws.items()}
    saved = json.loads(Path(args.base_json).read_text())["runs"] if args.base_json else {}
    missing = [s for s in args.seeds if str(s) not in saved and not (runs[s] / "results.json").is_file()]
    trained = common.run_many([(rt.train_one, (base_raws[s],), {}) for s in missing], workers=args.workers,
                              label=lambda i, r: f"base seed {missing[i]}: c2i R@1 {100 * r['joint']['c2i_r1']:.1f}")
    base = {s: saved.get(str(s)) or (trained[missing.index(s)] if s in missing else base_result(runs[s]))
            for s in args.seeds}

    mined_dir = Path(args.runs_dir)
    reports, raws = {}, {}
    for s in args.seeds:
        f = mined_dir / f"seed{s}.safetensors"
        reports[s] = mine(runs[s], f)
        print(f"  seed {s}: mined in {reports[s]['seconds']:.0f} s ({reports[s]['pairs_per_s']:,.0f} pairs/s)", flush=True)
        a = rt.build_parser().parse_args([*common_args, "--runs-dir", str(mined_dir),
                                          "--set", f"tasks.{TASK}.retrieval.mined={f}"])
        raws[s] = rt.retrieval_config(a, s)
    fresh = common.run_many([(rt.train_one, (raws[s],), {}) for s in args.seeds], workers=args.workers,
                            label=lambda i, r: f"mined seed {args.seeds[i]}: c2i R@1 {100 * r['joint']['c2i_r1']:.1f}")
    mined = dict(zip(args.seeds, fresh))

    from cotrain.data.mined import read_mined
    from cotrain.data.sources import build_all_task_data

    fn = {"data": [], "mined": []}
    for s in args.seeds:
        m = read_mined(mined_dir / f"seed{s}.safetensors")
        cfg = common.validate(base_raws[s])
        train = build_all_task_data(cfg)[0][TASK].train
        fn["data"].append(false_negative_rate(s, args.n_train, train.arrays["image_id"], train.arrays["candidate_id"], args.check_rows))
        fn["mined"].append(false_negative_rate(s, args.n_train, m.caption_image_id, m.candidate_id[:, :12], args.check_rows))

    keys = [("c2i_r1", "c2i R@1"), ("c2i_r5", "R@5"), ("c2i_r10", "R@10"), ("i2c_r1", "i2c R@1")]
    rows = []
    for arm, res in (("data's own candidates", base), ("mined by the base model", mined)):
        per = [res[s] for s in args.seeds]
        rows.append([arm, *[common.fmt_ms([100 * r["joint"][k] for r in per], 1) for k, _ in keys],
                     " / ".join(f"{100 * r['joint']['c2i_r1']:.0f}" for r in per),
                     common.fmt_ms([100 * x for x in fn["data" if res is base else "mined"]], 1)])
    table = common.markdown_table(["negatives from", *[h for _, h in keys], "c2i R@1 per seed",
                                   "candidates the caption is true of (%)"], rows)
    c2i_b = [100 * base[s]["joint"]["c2i_r1"] for s in args.seeds]
    c2i_m = [100 * mined[s]["joint"]["c2i_r1"] for s in args.seeds]
    diff = common.mean(c2i_m) - common.mean(c2i_b)
    verdict = (f"Mined negatives {'beat' if diff > 0 else 'trail'} the data's own by {abs(diff):.1f} points of "
               f"caption→image R@1 — " + ("beyond" if common.beyond_noise(c2i_m, c2i_b) else "within") + " the spread.")
    mining = (f"Mining (`cotrain data mine`, full trunk on each caption's pooled-state top 64 of "
              f"{reports[args.seeds[0]]['images']:,} training images): "
              + ", ".join(f"seed {s} {reports[s]['seconds']:.0f} s" for s in args.seeds)
              + f"; {common.mean(r['pairs_per_s'] for r in reports.values()):,.0f} pairs/s.")
    print(f"\n{TASK}: negatives from the data vs mined by a trained model (test pool, %)\n\n{table}\n\n{verdict}\n{mining}")
    wall = time.perf_counter() - t0
    if args.out:
        common.write_section(args.out, args.section, "\n\n".join([
            f"## Retrieval with mined hard negatives: `{TASK}`",
            common.header("cpu", args.workers, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
            f"Settings: small preset, loss both, per_epoch draws of 3 negatives from 12 candidates + 1 random, "
            f"{args.n_train:,} training captions, {args.steps:,} steps. The base arm is the RETRIEVAL section's runs; "
            "the mined arm trains a fresh model (same settings and seed) on the candidates the base run's model "
            "mined. Last column: the share of the candidates (over "
            f"{args.check_rows} sampled captions per seed) that the caption is true of by the world's facts.",
            table, verdict, mining, f"Wall time of this invocation: {wall:.0f} s.",
        ]))
        print(f"wrote section {args.section} of {args.out}")
    print(f"\ntotal wall time: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
