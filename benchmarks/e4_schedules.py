"""E4 -- PolyViT Table 1: the five co-training schedules on the 7 world tasks, at equal compute.

One model (the preset's: small = dim 128, depth 4, 4 heads, ~0.92M parameters) is co-trained on
shapes, count, digits (image), motion, moving-digits (video), sounds, spoken-digits (audio) with each
schedule. Every schedule processes the same number of task batches, S x K (K = 7 tasks, S = the
per-task budget):

- ``task_by_task``, ``alternating``, ``uniform``, ``weighted``: S x K steps, one task batch and one
  update per step (task-by-task: S steps of each task, in the order above);
- ``accumulate``: S steps, each runs one batch of every task and makes one update from the summed
  gradients.

``weighted``: all training sets have the same size in both presets, so size-based or temperature
weighting (p ~ n^(1/T), T = 2) would be exactly the uniform schedule (same seed: the same task
sequence). By default (``--weighting classes``) the weights are explicit and upweight the harder
tasks, with the number of classes as the measure of hardness: p ~ C, so the 10-class tasks (digits,
moving-digits, spoken-digits) are drawn 10/6 as often as the 6-class ones. ``--weighting temperature``
uses PolyViT's p ~ n^(1/T), T = 2 instead.

Each run reports test top-1 per task. The table gets one row per schedule, one column per task and
the mean (best per column in bold), the plot ``docs/img/e4_schedules.png`` grouped bars, and a
sentence computed from the numbers says whether task-by-task forgets its first 3 tasks.

Choice of S (small preset): S = 300 per task, i.e. 2,100 task batches per schedule. Measured on the
2-core development machine before the conv stems (one torch thread, batch 32, CPU time per step):
image 0.055 s, video 0.110 s, audio 0.062 s; the conv stems add roughly a third to image and video
steps. Five runs on 2 worker processes take 3 rounds: ~10-12 min on two free cores, within the
~20 min budget of a small preset; the wall time of the run that produced the table is printed and
written under it. The full preset (GPU) uses S = 3,000.

    python benchmarks/e4_schedules.py [--preset small|full] [--steps-scale 1.0]
        [--out docs/results.md] [--runs-dir runs/bench/e4] [--weighting classes|temperature] [--seeds 0 1 2]

Every schedule runs with each seed (default 0, 1, 2: its own data, initialisation and batches); the
table gives mean ± std over the seeds, and a difference is called a finding only when the arms'
mean ± std intervals do not overlap (BENCHMARK.md, "How a finding is judged").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SCHEDULES = ["task_by_task", "alternating", "uniform", "weighted", "accumulate"]
SECTION = "E4"
FIRST = 3  # task-by-task's early tasks, checked for forgetting
FORGET_MARGIN = 0.05  # a drop of more than 5 points counts as forgetting


def schedule_configs(args, tasks: list[str], seed: int) -> list[dict]:
    """One config dict per schedule, at equal compute (S x K task batches each), for ``seed``."""
    from cotrain.data.world import CLASS_NAMES

    s = common.per_task_steps(args.preset, args.steps_scale)
    k = len(tasks)
    out = []
    for kind in SCHEDULES:
        steps = s if kind == "accumulate" else s * k
        raw = common.base_config(
            args.preset, tasks=tasks, steps=steps, seed=seed, device=args.device,
            out_dir=str(Path(args.runs_dir) / f"seed{seed}" / kind), name=f"e4-{kind}-s{seed}", threads=args.threads,
        )
        raw["schedule"] = {"kind": kind}
        if kind == "weighted":
            if args.weighting == "classes":
                raw["schedule"]["weighting"] = "explicit"
                for t in raw["tasks"]:
                    t["weight"] = float(len(CLASS_NAMES[t["name"]]))
            else:
                raw["schedule"].update(weighting="temperature", temperature=2.0)
        common.validate(raw)
        out.append(raw)
    return out


def weighting_text(args, tasks: list[str]) -> str:
    from cotrain.data.world import CLASS_NAMES

    if args.weighting == "temperature":
        return "`weighted`: p ∝ n^(1/T), T = 2 (equal training-set sizes, so the same probabilities as uniform)."
    c = {t: len(CLASS_NAMES[t]) for t in tasks}
    z = sum(c.values())
    probs = ", ".join(f"{t} {c[t] / z:.3f}" for t in tasks)
    return (f"`weighted`: explicit weights = number of classes, upweighting the harder (more-class) tasks "
            f"(all training sets are the same size, so size/temperature weighting would equal uniform): {probs}.")


def first_mean(run: dict, tasks: list[str]) -> float:
    return common.mean(run["results"][t]["value"] for t in tasks)


def forgetting_sentence(rows: dict[str, list[dict]], tasks: list[str], chance: dict[str, float]) -> str:
    """Task-by-task's first tasks against the other schedules', per seed, judged against the spread."""
    first, later = tasks[:FIRST], tasks[FIRST:]
    others = [k for k in rows if k != "task_by_task"]
    n = len(rows["task_by_task"])
    tbt = [first_mean(r, first) for r in rows["task_by_task"]]
    rest = [common.mean(first_mean(rows[k][i], first) for k in others) for i in range(n)]
    tbt_later = [first_mean(r, later) for r in rows["task_by_task"]]
    rest_later = [common.mean(first_mean(rows[k][i], later) for k in others) for i in range(n)]
    (mt, _), (mr, _) = common.mean_std(tbt), common.mean_std(rest)
    ch = common.mean(chance[t] for t in first)
    if mr - mt > FORGET_MARGIN and common.beyond_noise(tbt, rest):
        verdict = "its early tasks are forgotten, beyond the spread of the seeds"
    elif common.beyond_noise(tbt, rest):
        verdict = "the difference exceeds the spread of the seeds but is small"
    else:
        verdict = "within noise (the seeds' spreads overlap): no forgetting is shown"
    return (
        f"Task-by-task trains {' → '.join(tasks)} in that order. On its first {len(first)} tasks "
        f"({', '.join(first)}) it reaches a mean test top-1 of {common.fmt_ms(tbt)} over {n} seeds, against "
        f"{common.fmt_ms(rest)} for the other {len(others)} schedules on the same tasks "
        f"({(mt - mr) * 100:+.1f} points; chance {ch:.3f}): {verdict}. On the later {len(later)} tasks it reaches "
        f"{common.fmt_ms(tbt_later)} against {common.fmt_ms(rest_later)}."
    )


def best_sentence(rows: dict[str, list[dict]], tasks: list[str]) -> str:
    means = {k: [first_mean(r, tasks) for r in runs] for k, runs in rows.items()}
    order = sorted(means, key=lambda k: common.mean(means[k]), reverse=True)
    ranking = " > ".join(f"{k} ({common.fmt_ms(means[k])})" for k in order)
    best = order[0]
    tied = [k for k in order[1:] if not common.beyond_noise(means[best], means[k])]
    apart = [k for k in order[1:] if k not in tied]
    return (f"Mean test top-1 over the {len(tasks)} tasks, best to worst (mean ± std over seeds): {ranking}. "
            f"Within noise of the best ({best}): {', '.join(tied) or 'none'}; below it beyond the spread: "
            f"{', '.join(apart) or 'none'}.")


def plot(rows: dict[str, list[dict]], tasks: list[str], chance: dict[str, float], path: Path) -> None:
    import numpy as np

    plt = common.plt()
    cols = tasks + ["mean"]
    x = np.arange(len(cols))
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(cols)), 4.2))
    for i, (kind, runs) in enumerate(rows.items()):
        stats = [common.mean_std(r["results"][t]["value"] for r in runs) for t in tasks]
        stats.append(common.mean_std(first_mean(r, tasks) for r in runs))
        ax.bar(x - 0.4 + width * (i + 0.5), [m for m, _ in stats], width, yerr=[sd for _, sd in stats],
               capsize=2, label=kind)
    ch = [chance[t] for t in tasks] + [common.mean(chance.values())]
    ax.scatter(x, ch, marker="_", s=900, color="black", zorder=3, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels(cols, rotation=20)
    ax.set_ylabel("test top-1 (mean ± std over seeds)")
    ax.set_ylim(0, 1)
    ax.set_title("E4: co-training schedules at equal compute")
    ax.legend(ncol=3, fontsize=8, loc="upper right")
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(ap, runs_dir="runs/bench/e4")
    common.add_seeds_arg(ap, [0, 1, 2])
    ap.add_argument("--weighting", choices=["classes", "temperature"], default="classes",
                    help="weighted schedule: explicit weights = number of classes (default), or p ~ n^(1/T), T=2")
    args = ap.parse_args(argv)
    common.check_args(args)
    t0 = time.perf_counter()

    tasks, dropped = common.available_tasks(common.DEMO_TASKS)
    note = common.espeak_note(dropped)
    if note:
        print(note, flush=True)
    per_seed = {seed: schedule_configs(args, tasks, seed) for seed in args.seeds}
    raws = [raw for seed in args.seeds for raw in per_seed[seed]]
    device = raws[0]["run"]["device"]
    s = common.per_task_steps(args.preset, args.steps_scale)
    print(f"E4: {len(SCHEDULES)} schedules x {len(tasks)} tasks x seeds {args.seeds}, S = {s} steps per task "
          f"({s * len(tasks)} task batches per schedule), preset {args.preset}, device {device}", flush=True)
    prep = common.prepare_data(raws)
    print(f"  data ready in {prep:.0f} s", flush=True)

    jobs = [(common.run_experiment, (raw,), {}) for raw in raws]
    done = common.run_many(
        jobs, workers=args.workers, threads=args.threads,
        label=lambda i, r: f"{r['name']}: mean {common.mean(v['value'] for v in r['results'].values()):.3f} "
                           f"({r['wall_s']:.0f} s)",
    )
    k = len(SCHEDULES)
    rows = {kind: [done[j * k + i] for j in range(len(args.seeds))] for i, kind in enumerate(SCHEDULES)}
    chance = {t: rows["uniform"][0]["results"][t]["chance"] for t in tasks}

    # table: one row per schedule, one column per task + mean; mean ± std over seeds, best mean in bold
    means = {kind: [common.mean_std(r["results"][t]["value"] for r in runs)[0] for t in tasks]
             + [common.mean_std(first_mean(r, tasks) for r in runs)[0]] for kind, runs in rows.items()}
    table_rows = []
    for i, (kind, runs) in enumerate(rows.items()):
        updates = per_seed[args.seeds[0]][i]["run"]["steps"]  # accumulate: one update per step of K batches
        batches = sum(v["steps"] for v in runs[0]["results"].values())
        cells = [common.fmt_ms(r["results"][t]["value"] for r in runs) for t in tasks]
        cells.append(common.fmt_ms(first_mean(r, tasks) for r in runs))
        best = [max(means[q][c] for q in means) for c in range(len(cells))]
        cells = [f"**{c}**" if means[kind][j] == best[j] else c for j, c in enumerate(cells)]
        table_rows.append([f"`{kind}`", f"{updates:,}", f"{batches:,}", *cells])
    table_rows.append(["chance", "", "", *[common.fmt(chance[t]) for t in tasks], common.fmt(common.mean(chance.values()))])
    table = common.markdown_table(["schedule", "updates", "task batches", *tasks, "mean"], table_rows)

    img, link = common.img_path(args.out, "e4_schedules.png")
    plot(rows, tasks, chance, img)
    wall = time.perf_counter() - t0
    sentences = [forgetting_sentence(rows, tasks, chance), best_sentence(rows, tasks)]
    p = common.PRESETS[args.preset]
    setup = (
        f"Setup: preset `{args.preset}`{f' × steps-scale {args.steps_scale:g}' if args.steps_scale != 1 else ''}; "
        f"model dim {p.dim}, depth {p.depth}, {p.num_heads} heads, L_adapt 0 "
        f"({rows['uniform'][0]['params']['total']:,} parameters); batch {p.batch_size} per task; "
        f"AdamW lr {p.lr:g}, 5% warm-up, cosine decay; {p.n_train:,} train / {p.n_test:,} test examples per task "
        f"({p.image_size} px, {p.frames} frames, {p.sample_rate // 1000} kHz × {p.seconds:g} s audio); seeds {args.seeds} "
        f"(each seed draws its own data, initialisation and batches). "
        f"Equal compute: S = {s} batches per task, i.e. {s * len(tasks):,} task batches per schedule "
        f"(one-task schedules: {s * len(tasks):,} steps of one batch; `accumulate`: {s:,} steps of {len(tasks)} batches). "
        + weighting_text(args, tasks)
    )
    common.publish(args.out, SECTION, [
        "## E4 — co-training schedules (PolyViT Table 1)",
        common.header(device, args.workers, args.threads, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        setup,
        note,
        f"Test top-1 per task, mean ± std over {len(args.seeds)} seeds (best mean per column in bold):",
        table,
        *sentences,
        f"![E4 schedules]({link})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, "\n".join(sentences)], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
