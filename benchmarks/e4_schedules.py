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
        [--out docs/results.md] [--runs-dir runs/bench/e4] [--weighting classes|temperature]
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


def schedule_configs(args, tasks: list[str]) -> list[dict]:
    """One config dict per schedule, at equal compute (S x K task batches each)."""
    from cotrain.data.world import CLASS_NAMES

    s = common.per_task_steps(args.preset, args.steps_scale)
    k = len(tasks)
    out = []
    for kind in SCHEDULES:
        steps = s if kind == "accumulate" else s * k
        raw = common.base_config(
            args.preset, tasks=tasks, steps=steps, seed=args.seed, device=args.device,
            out_dir=str(Path(args.runs_dir) / kind), name=f"e4-{kind}", threads=args.threads,
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


def forgetting_sentence(rows: dict[str, dict], tasks: list[str], chance: dict[str, float]) -> str:
    first = tasks[:FIRST]
    others = [k for k in rows if k != "task_by_task"]
    tbt = common.mean(rows["task_by_task"]["results"][t]["value"] for t in first)
    rest = common.mean(common.mean(rows[k]["results"][t]["value"] for t in first) for k in others)
    ch = common.mean(chance[t] for t in first)
    later = tasks[FIRST:]
    tbt_later = common.mean(rows["task_by_task"]["results"][t]["value"] for t in later)
    rest_later = common.mean(common.mean(rows[k]["results"][t]["value"] for t in later) for k in others)
    diff = tbt - rest
    if diff < -FORGET_MARGIN:
        verdict = "its early tasks are forgotten"
        if tbt - ch < 0.5 * (rest - ch):
            verdict += " (it keeps less than half of the others' margin over chance)"
    elif diff > FORGET_MARGIN:
        verdict = "its early tasks are not forgotten: it is ahead of the other schedules on them"
    else:
        verdict = f"its early tasks are not forgotten (within {FORGET_MARGIN * 100:.0f} points of the others)"
    return (
        f"Task-by-task trains {' → '.join(tasks)} in that order. On its first {len(first)} tasks "
        f"({', '.join(first)}) it reaches a mean test top-1 of {tbt:.3f}, against {rest:.3f} for the other "
        f"{len(others)} schedules on the same tasks ({diff * 100:+.1f} points; chance {ch:.3f}): {verdict}. "
        f"On the later {len(later)} tasks it reaches {tbt_later:.3f} against {rest_later:.3f} "
        f"({(tbt_later - rest_later) * 100:+.1f} points)."
    )


def best_sentence(rows: dict[str, dict], tasks: list[str]) -> str:
    means = {k: common.mean(r["results"][t]["value"] for t in tasks) for k, r in rows.items()}
    order = sorted(means, key=means.get, reverse=True)
    ranking = " > ".join(f"{k} ({means[k]:.3f})" for k in order)
    return f"Mean test top-1, best to worst: {ranking}."


def plot(rows: dict[str, dict], tasks: list[str], chance: dict[str, float], path: Path) -> None:
    import numpy as np

    plt = common.plt()
    cols = tasks + ["mean"]
    x = np.arange(len(cols))
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(cols)), 4.2))
    for i, (kind, r) in enumerate(rows.items()):
        vals = [r["results"][t]["value"] for t in tasks]
        vals.append(common.mean(vals))
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=kind)
    ch = [chance[t] for t in tasks] + [common.mean(chance.values())]
    ax.scatter(x, ch, marker="_", s=900, color="black", zorder=3, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels(cols, rotation=20)
    ax.set_ylabel("test top-1")
    ax.set_ylim(0, 1)
    ax.set_title("E4: co-training schedules at equal compute")
    ax.legend(ncol=3, fontsize=8, loc="upper right")
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(ap, runs_dir="runs/bench/e4")
    ap.add_argument("--weighting", choices=["classes", "temperature"], default="classes",
                    help="weighted schedule: explicit weights = number of classes (default), or p ~ n^(1/T), T=2")
    args = ap.parse_args(argv)
    common.check_args(args)
    t0 = time.perf_counter()

    tasks, dropped = common.available_tasks(common.DEMO_TASKS)
    note = common.espeak_note(dropped)
    if note:
        print(note, flush=True)
    raws = schedule_configs(args, tasks)
    device = raws[0]["run"]["device"]
    s = common.per_task_steps(args.preset, args.steps_scale)
    print(f"E4: {len(SCHEDULES)} schedules x {len(tasks)} tasks, S = {s} steps per task "
          f"({s * len(tasks)} task batches per schedule), preset {args.preset}, device {device}", flush=True)
    prep = common.prepare_data(raws)
    print(f"  data ready in {prep:.0f} s", flush=True)

    jobs = [(common.run_experiment, (raw,), {}) for raw in raws]
    done = common.run_many(
        jobs, workers=args.workers, threads=args.threads,
        label=lambda i, r: f"{SCHEDULES[i]}: mean {common.mean(v['value'] for v in r['results'].values()):.3f} "
                           f"({r['wall_s']:.0f} s)",
    )
    rows = dict(zip(SCHEDULES, done))
    chance = {t: rows["uniform"]["results"][t]["chance"] for t in tasks}

    # table: one row per schedule, one column per task + mean; best per column in bold
    per_col = [[r["results"][t]["value"] for r in rows.values()] for t in tasks]
    per_col.append([common.mean(r["results"][t]["value"] for t in tasks) for r in rows.values()])
    bold = [common.bold_best(col) for col in per_col]
    table_rows = []
    for i, (kind, r) in enumerate(rows.items()):
        updates = raws[i]["run"]["steps"]  # accumulate: one update per step of K batches
        batches = sum(v["steps"] for v in r["results"].values())
        table_rows.append([f"`{kind}`", f"{updates:,}", f"{batches:,}", *[b[i] for b in bold]])
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
        f"({rows['uniform']['params']['total']:,} parameters); batch {p.batch_size} per task; "
        f"AdamW lr {p.lr:g}, 5% warm-up, cosine decay; {p.n_train:,} train / {p.n_test:,} test examples per task "
        f"({p.image_size} px, {p.frames} frames, {p.sample_rate // 1000} kHz × {p.seconds:g} s audio); seed {args.seed}. "
        f"Equal compute: S = {s} batches per task, i.e. {s * len(tasks):,} task batches per schedule "
        f"(one-task schedules: {s * len(tasks):,} steps of one batch; `accumulate`: {s:,} steps of {len(tasks)} batches). "
        + weighting_text(args, tasks)
    )
    common.publish(args.out, SECTION, [
        "## E4 — co-training schedules (PolyViT Table 1)",
        common.header(device, args.workers, args.threads, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        setup,
        note,
        "Test top-1 per task (best per column in bold):",
        table,
        *sentences,
        f"![E4 schedules]({link})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, "\n".join(sentences)], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
