"""Retrieval with hard negatives mined by a trained model (12-in-1's offline mining) on ``coco-ir``.

Per seed: take the ``retrieval_train.py`` run trained with the data's own hard candidates (the
world's: images sharing the most attributes with the caption's on which the caption is false) -
training it first when ``--base-runs-dir`` lacks it -; mine each training caption's 12 hard
candidates with it (``cotrain data mine RUN --task coco-ir``, the command users run); train a fresh
model with the same settings drawing its negatives from the mined file
(``tasks.coco-ir.retrieval.mined``); and (unless ``--no-oracle-arm``) a third model on the mined
candidates less those the world's facts say the caption is true of - an oracle filter that
isolates what false negatives do. Prints recall@1/5/10 of each arm on the test pool, mean ± std
over the seeds, and, because the world knows every caption's truth, the share of each arm's
candidates the caption is actually true of (false negatives; over ``--check-rows`` sampled rows).

    python benchmarks/retrieval_mined.py --seeds 0 1 2 --base-json runs/bench/retrieval/both_50k_6k.json \\
        [--out docs/results.md]

``--base-json``: the base arm's results from an earlier ``retrieval_train.py --json`` with the same
settings (else they are read from the base runs' ``results.json``; a missing base run is trained).
About 40 s of mining, 5 min of oracle filtering and 2 x 9 min of training per seed at the defaults
(one CPU thread per worker). ``--reuse`` keeps mined files and finished runs under ``--runs-dir``.
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


def false_negative_rate(seed: int, n_train: int, caption_image_id, candidate_id, rows: int) -> float:
    """The share of the candidates of ``rows`` sampled training captions (``caption_image_id [N]``,
    ``candidate_id [N, C]``, -1: none; ``n_train`` captions generated) that their caption is true
    of, by the world's own facts (:func:`caption_truth`)."""
    import numpy as np

    ids, cand = np.asarray(caption_image_id), np.asarray(candidate_id)
    pick = np.random.default_rng(0).choice(len(ids), min(rows, len(ids)), replace=False)
    true = caption_truth(seed, n_train, ids[pick], cand[pick])
    return float(true.sum() / max(int((cand[pick] >= 0).sum()), 1))


def mine(run: Path, out: Path, candidates: int = 12, shortlist: int = 64) -> dict:
    """``cotrain data mine RUN --task coco-ir --out OUT`` as a user runs it; its JSON report."""
    from cotrain.cli import main as cli

    report = out.with_suffix(".json")
    code = cli(["data", "mine", str(run), "--task", TASK, "--out", str(out), "--json", str(report), "--quiet",
                "--candidates", str(candidates), "--shortlist", str(shortlist)])
    if code:
        raise SystemExit(f"cotrain data mine {run} failed with exit code {code}")
    return json.loads(report.read_text())


def base_result(run: Path) -> dict:
    """The base arm's figures of a finished ``retrieval_train`` run (joint recall from its results.json)."""
    res = json.loads((run / "results.json").read_text())
    r = res["results"][TASK] if "results" in res else res[TASK]
    return {"joint": r["details"], "pool": int(round(1 / r["chance"])), "chance": r["chance"], "n": r["n"]}


def caption_truth(seed: int, n_train: int, caption_image_id, candidate_id, image_size: int = 48):
    """``[N, C]`` bool: whether each caption is true of each of its candidates (world facts; False
    where there is none). Scenes are built once per image."""
    import numpy as np

    from cotrain.data.world.common import SPLIT_OFFSETS, example_rng, task_seed
    from cotrain.data.world.vl import retrieval, task_stream, vl_scene

    gen = np.asarray(task_stream(TASK, seed, image_size).ids("train", n_train))
    row_of = {int(i): r for r, i in enumerate(gen)}
    ts = task_seed(seed, TASK)
    scenes: dict[int, object] = {}

    def scene(i: int):
        if i not in scenes:
            scenes[i] = vl_scene(seed, i, image_size)
        return scenes[i]

    out = np.zeros(candidate_id.shape, bool)
    for r, image in enumerate(caption_image_id.tolist()):
        _, facts = retrieval.CAPTIONS[TASK](scene(image), example_rng(ts, SPLIT_OFFSETS["train"] + row_of[image]))
        for c, cand in enumerate(candidate_id[r].tolist()):
            out[r, c] = cand >= 0 and bool(retrieval.caption_possible(scene(cand), facts))
    return out


def oracle_filtered(seed: int, n_train: int, src: str, dst: str) -> float:
    """Write ``src``'s mined candidates without those the caption is true of (the rest kept in
    order, -1 after) to ``dst``; the share removed."""
    import numpy as np

    from cotrain.data.mined import MinedCandidates, read_mined, write_mined

    m = read_mined(src)
    true = caption_truth(seed, n_train, m.caption_image_id, m.candidate_id)
    order = np.argsort(true, axis=1, kind="stable")  # the false ones first, in their order
    ids = np.take_along_axis(np.where(true, -1, m.candidate_id), order, axis=1)
    score = np.take_along_axis(np.where(true, np.nan, m.score), order, axis=1)
    write_mined(dst, MinedCandidates(m.caption_image_id, ids, score, m.own_score,
                                     {**m.metadata, "filtered": "world facts: candidates the caption is true of removed"}))
    return float(true[m.candidate_id >= 0].mean())


def finished(run: Path) -> dict | None:
    """A finished run's figures (``base_result``), None when it has not finished."""
    return base_result(run) if (run / "results.json").is_file() else None


def arm_runs(label: str, seeds: list[int], raws: dict, reuse: bool, workers: int) -> dict:
    """``{seed: figures}``: each config trained (or, with ``reuse``, read from its finished run)."""
    done = {s: finished(Path(raws[s]["run"]["out_dir"])) if reuse else None for s in seeds}
    todo = [s for s in seeds if done[s] is None]
    fresh = common.run_many([(rt.train_one, (raws[s],), {}) for s in todo], workers=workers,
                            label=lambda i, r: f"{label} seed {todo[i]}: c2i R@1 {100 * r['joint']['c2i_r1']:.1f}")
    done.update(zip(todo, fresh))
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-runs-dir", default="runs/bench/retrieval/6k", help="where the base runs are (or go)")
    ap.add_argument("--base-json", default=None, help="the base arm's per-seed results (retrieval_train.py --json)")
    ap.add_argument("--runs-dir", default="runs/bench/retrieval/mined", help="mined files and the mined arms' runs")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--candidates", type=int, default=12, help="mined candidates per caption, all kept by the "
                    "training runs (12-in-1 draws its negatives from each image's 100 nearest)")
    ap.add_argument("--shortlist", type=int, default=64, help="cotrain data mine --shortlist")
    ap.add_argument("--check-rows", type=int, default=300, help="sampled captions for the false-negative share")
    ap.add_argument("--no-oracle-arm", action="store_true", help="skip the arm trained on the mined candidates "
                    "without those the caption is true of")
    ap.add_argument("--reuse", action="store_true", help="reuse mined files and finished runs already under --runs-dir")
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
    base = arm_runs("base", [s for s in args.seeds if str(s) not in saved], base_raws, True, args.workers)
    base.update({int(s): r for s, r in saved.items() if int(s) in args.seeds})

    mined_dir = Path(args.runs_dir)
    reports = {}
    for s in args.seeds:
        f = mined_dir / f"seed{s}.safetensors"
        if args.reuse and f.is_file() and f.with_suffix(".json").is_file():
            reports[s] = json.loads(f.with_suffix(".json").read_text())
        else:
            reports[s] = mine(runs[s], f, args.candidates, args.shortlist)
        print(f"  seed {s}: mined in {reports[s]['seconds']:.0f} s ({reports[s]['pairs_per_s']:,.0f} pairs/s)", flush=True)

    def raws_for(folder: Path, files: dict) -> dict:
        return {s: rt.retrieval_config(rt.build_parser().parse_args(
            [*common_args, "--runs-dir", str(folder), "--candidates", str(args.candidates),
             "--set", f"tasks.{TASK}.retrieval.mined={files[s]}"]), s)
            for s in args.seeds}

    mined_files = {s: mined_dir / f"seed{s}.safetensors" for s in args.seeds}
    arms = [("data's own candidates", base, None),
            ("mined by the base model", arm_runs("mined", args.seeds, raws_for(mined_dir, mined_files), args.reuse,
                                                 args.workers), mined_files)]
    if not args.no_oracle_arm:
        clean_dir = mined_dir / "oracle-filtered"
        clean_files = {s: clean_dir / f"seed{s}.safetensors" for s in args.seeds}
        removed = common.run_many([(oracle_filtered, (s, args.n_train, str(mined_files[s]), str(clean_files[s])), {})
                                   for s in args.seeds], workers=args.workers,
                                  label=lambda i, r: f"seed {args.seeds[i]}: {100 * r:.1f}% of the mined candidates removed")
        print(f"  oracle filter removed {common.fmt_ms([100 * r for r in removed], 1)}% of the mined candidates", flush=True)
        arms.append(("mined, minus those the caption is true of (world oracle)",
                     arm_runs("mined-filtered", args.seeds, raws_for(clean_dir, clean_files), args.reuse, args.workers),
                     clean_files))

    from cotrain.data.mined import read_mined
    from cotrain.data.sources import build_all_task_data

    fn = {arm: [] for arm, _, _ in arms}
    for s in args.seeds:
        train = build_all_task_data(common.validate(base_raws[s]))[0][TASK].train
        for arm, _, files in arms:
            if files is None:
                ids, cand = train.arrays["image_id"], train.arrays["candidate_id"]
            else:
                m = read_mined(files[s])
                ids, cand = m.caption_image_id, m.candidate_id[:, :args.candidates]
            fn[arm].append(false_negative_rate(s, args.n_train, ids, cand, args.check_rows))

    keys = [("c2i_r1", "c2i R@1"), ("c2i_r5", "R@5"), ("c2i_r10", "R@10"), ("i2c_r1", "i2c R@1")]
    rows = []
    for arm, res, _ in arms:
        per = [res[s] for s in args.seeds]
        rows.append([arm, *[common.fmt_ms([100 * r["joint"][k] for r in per], 1) for k, _ in keys],
                     " / ".join(f"{100 * r['joint']['c2i_r1']:.0f}" for r in per), common.fmt_ms([100 * x for x in fn[arm]], 1)])
    table = common.markdown_table(["negatives from", *[h for _, h in keys], "c2i R@1 per seed",
                                   "candidates the caption is true of (%)"], rows)
    c2i = {arm: [100 * res[s]["joint"]["c2i_r1"] for s in args.seeds] for arm, res, _ in arms}
    base_name = arms[0][0]
    verdicts = []
    for arm, _, _ in arms[1:]:
        diff = common.mean(c2i[arm]) - common.mean(c2i[base_name])
        verdicts.append(f"{arm[0].upper() + arm[1:]}: {'+' if diff >= 0 else '−'}{abs(diff):.1f} points of caption→image "
                        f"R@1 against the data's own candidates — "
                        + ("beyond" if common.beyond_noise(c2i[arm], c2i[base_name]) else "within") + " the spread.")
    mining = (f"Mining (`cotrain data mine`, the {args.candidates} best by the full trunk among each caption's "
              f"pooled-state top {args.shortlist} of "
              f"{reports[args.seeds[0]]['images']:,} training images): "
              + ", ".join(f"seed {s} {reports[s]['seconds']:.0f} s" for s in args.seeds)
              + f"; {common.mean(r['pairs_per_s'] for r in reports.values()):,.0f} pairs/s.")
    print(f"\n{TASK}: negatives from the data vs mined by a trained model (test pool, %)\n\n{table}\n\n"
          + "\n".join(verdicts) + f"\n{mining}")
    wall = time.perf_counter() - t0
    if args.out:
        common.write_section(args.out, args.section, "\n\n".join([
            f"## Retrieval with mined hard negatives: `{TASK}`",
            common.header("cpu", args.workers, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
            f"Settings: small preset, loss both, per_epoch draws of 3 negatives from 12 candidates (mined arms: "
            f"{args.candidates}) + 1 random, "
            f"{args.n_train:,} training captions, {args.steps:,} steps. The base arm is the RETRIEVAL section's runs; "
            "the mined arm trains a fresh model (same settings and seed) on the candidates the base run's model "
            "mined; the filtered arm on the same candidates less those the world's facts say the caption is true of "
            "(an oracle no real dataset has: it isolates the effect of false negatives). Last column: the share of "
            f"the candidates (over {args.check_rows} sampled captions per seed) that the caption is true of.",
            table, "\n".join(f"- {v}" for v in verdicts), mining,
            f"Wall time of this invocation: {wall:.0f} s" + (" (finished runs and mined files reused)." if args.reuse else "."),
        ]))
        print(f"wrote section {args.section} of {args.out}")
    print(f"\ntotal wall time: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
