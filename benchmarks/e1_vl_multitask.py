"""E1 -- 12-in-1 Table 2: single-task (12 models) vs group-task (4) vs all-task (1) vs all-task →
single-task fine-tuning, on the 12 world V&L tasks, with parameter counts; and the Dynamic
Stop-and-Go states of the all-task run over training (the paper's Figure 2).

Every setup uses the embedded ``vl12.yaml`` recipe (co-attention trunk, task token per dataset,
DSG with Δ = 4, round-robin, loss scaling, η·N warm-up, the clean multi-task split) at the preset's
size. Equal steps per task: a single-task model trains S steps, a group model S × |group|, the
all-task model S × 12; fine-tuning then adds F steps per task from the all-task checkpoint.
The "average" is the mean over the 12 tasks of each task's primary metric (VQA accuracy, R@1
caption→image, referring-expression accuracy at IoU ≥ 0.5, accuracy), as 12-in-1 averages.

Small preset: S = 150, F = 60, dim 64, 1 visual / 2 text layers (see vl_common.VL_PRESETS);
~6,000 training steps per seed on 2 worker processes. Every setup runs with each of ``--seeds``
(default 0 1 2) and the table gives mean ± std over them (BENCHMARK.md, "How a finding is judged").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import vl_common as vc  # noqa: E402


def plot_dsg(history: list, tasks: list[str], steps: int, path: Path) -> None:
    """Figure 2 (left): a bar per task, thick while in go, thin while stopped."""
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(tasks) + 1.2))
    for y, task in enumerate(tasks):
        changes = [(s, st) for s, t, st in history if t == task]
        state, start = "go", 0
        for s, st in changes + [(steps, None)]:
            ax.plot([start, s], [y, y], color="tab:blue" if state == "go" else "tab:gray",
                    linewidth=6 if state == "go" else 1.5, solid_capstyle="butt")
            if st is not None:
                state, start = st, s
    ax.set_yticks(range(len(tasks)), tasks)
    ax.invert_yaxis()
    ax.set_xlabel("training step")
    ax.set_title("Dynamic Stop-and-Go: thick = go, thin = stop (update every Δ-th iteration)")
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    vc.add_args(ap, "runs/bench/e1")
    common.add_seeds_arg(ap, [0, 1, 2])
    args = ap.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds must be distinct, got {args.seeds}")
    t0 = time.perf_counter()
    p = vc.VL_PRESETS[args.preset]
    s = common.scaled_steps(p.per_task_steps, args.steps_scale)
    f = common.scaled_steps(p.finetune_steps, args.steps_scale)
    tasks = vc.VL_TASKS
    runs = Path(args.runs_dir)
    seeds = args.seeds

    def cfg(name, task_list, seed):
        return vc.vl_config(args.preset, task_list, steps=s * len(task_list), seed=seed, device=args.device,
                            out_dir=str(runs / f"seed{seed}" / name), name=f"{name}-s{seed}")

    jobs, keys, all_raws = [], [], []
    for seed in seeds:
        all_raw = cfg("all-task", tasks, seed)
        all_raws.append(all_raw)
        for name, raw in [("all-task", all_raw), *[(f"group-{g}", cfg(f"group-{g}", ts, seed)) for g, ts in vc.GROUPS.items()],
                          *[(f"single-{t}", cfg(f"single-{t}", [t], seed)) for t in tasks]]:
            keys.append((seed, name))
            jobs.append((vc.run_vl, (raw,), {"with_grounding": name == "all-task"}))
    print(f"E1: {len(jobs)} runs + {len(tasks) * len(seeds)} fine-tunings, S = {s}, F = {f}, seeds {seeds}, "
          f"preset {args.preset}", flush=True)
    prep = vc.prepare_vl_data(all_raws)
    print(f"  data ready in {prep:.0f} s", flush=True)

    def label(i, r):
        return f"{r['name']}: average {vc.avg(r['results'], list(r['results'])):.1f} ({r['wall_s']:.0f} s)"

    out = dict(zip(keys, common.run_many(jobs, workers=args.workers, label=label)))
    ft_keys = [(seed, t) for seed in seeds for t in tasks]
    ft_jobs = [(vc.run_vl, (), {"finetune_from": out[(seed, "all-task")]["checkpoint"], "task": t, "finetune_steps": f,
                                "out_dir": str(runs / f"seed{seed}" / f"ft-{t}")}) for seed, t in ft_keys]
    ft = dict(zip(ft_keys, common.run_many(ft_jobs, workers=args.workers, label=label)))

    setups = ["single-task", "group-task", "all-task", "all-task → single-task"]
    # res[setup][seed][task] -> result
    res = {
        "single-task": {sd: {t: out[(sd, f"single-{t}")]["results"][t] for t in tasks} for sd in seeds},
        "group-task": {sd: {t: out[(sd, f"group-{vc.GROUP_OF[t]}")]["results"][t] for t in tasks} for sd in seeds},
        "all-task": {sd: out[(sd, "all-task")]["results"] for sd in seeds},
        "all-task → single-task": {sd: {t: ft[(sd, t)]["results"][t] for t in tasks} for sd in seeds},
    }
    s0 = seeds[0]
    params = {
        "single-task": sum(out[(s0, f"single-{t}")]["params"] for t in tasks),
        "group-task": sum(out[(s0, f"group-{g}")]["params"] for g in vc.GROUPS),
        "all-task": out[(s0, "all-task")]["params"],
        "all-task → single-task": sum(ft[(s0, t)]["params"] for t in tasks),
    }
    labels = {"single-task": f"single-task (12 models × {s} steps)", "group-task": "group-task (4 models, S × group size steps)",
              "all-task": f"all-task (1 model, {s * 12:,} steps)", "all-task → single-task": f"all-task → single-task (+{f} steps each)"}

    def per_seed(setup, task):
        return [100 * res[setup][sd][task]["value"] for sd in seeds]

    def averages(setup):
        return [vc.avg(res[setup][sd], tasks) for sd in seeds]

    means = {k: [common.mean(per_seed(k, t)) for t in tasks] + [common.mean(averages(k))] for k in setups}
    best = [max(means[k][c] for k in setups) for c in range(len(tasks) + 1)]
    rows = []
    for k in setups:
        cells = [common.fmt_ms(per_seed(k, t), 1) for t in tasks] + [common.fmt_ms(averages(k), 1)]
        cells = [f"**{c}**" if means[k][j] == best[j] else c for j, c in enumerate(cells)]
        rows.append([labels[k], *cells, f"{params[k]:,}"])
    metric = vc.metric_names(res["all-task"][s0], tasks)
    chance = {t: 100 * res["all-task"][s0][t]["chance"] for t in tasks}
    rows.append(["chance (seed %d)" % s0, *[common.fmt(chance[t], 1) for t in tasks], common.fmt(sum(chance.values()) / 12, 1), ""])
    table = common.markdown_table(["setup", *[f"{t} ({metric[t]})" for t in tasks], "average", "parameters"], rows)

    def verdict(a, b):
        return "beyond the spread of the seeds" if common.beyond_noise(averages(a), averages(b)) else "within noise"

    a_single, a_all, a_ft, a_group = (common.mean(averages(k)) for k in ("single-task", "all-task", "all-task → single-task", "group-task"))
    wins = sum(common.mean(per_seed("all-task", t)) >= common.mean(per_seed("single-task", t)) for t in tasks)
    sentence = (
        f"Averages ×100 over {len(seeds)} seeds (mean ± std): single-task {common.fmt_ms(averages('single-task'), 1)}, "
        f"group-task {common.fmt_ms(averages('group-task'), 1)}, all-task {common.fmt_ms(averages('all-task'), 1)}, "
        f"all-task → single-task {common.fmt_ms(averages('all-task → single-task'), 1)}. "
        f"All-task vs single-task: {a_all - a_single:+.1f} points ({verdict('all-task', 'single-task')}), at or above "
        f"single-task on {wins} of 12 tasks (seed means), with {params['all-task']:,} parameters instead of "
        f"{params['single-task']:,} ({params['single-task'] / params['all-task']:.1f}× fewer). "
        f"Fine-tuning from all-task vs all-task: {a_ft - a_all:+.1f} ({verdict('all-task → single-task', 'all-task')}); "
        f"vs single-task: {a_ft - a_single:+.1f} ({verdict('all-task → single-task', 'single-task')}). "
        f"Group-task vs all-task: {a_group - a_all:+.1f} ({verdict('group-task', 'all-task')})."
    )
    g = out[(s0, "all-task")]["grounding"] or {}
    if g.get("weighted_pairs"):
        grounding_line = (
            f"Grounding consistency (12-in-1 section 5) of the all-task model (seed {s0}): on {g['images']} scenes with "
            f"both VQA questions and test referring expressions (refcoco, refcoco+, refcocog) about the same object, "
            f"{g['weighted_pairs']} question–expression pairs; the question is answered right and the referent "
            f"localised in {100 * g['consistency']:.1f}% of them (question accuracy {100 * g['question_accuracy']:.1f}%, "
            f"localised {100 * g['localised_rate']:.1f}%, localised given a right answer "
            f"{100 * g['localised_given_correct']:.1f}%).")
    elif g.get("error"):
        grounding_line = f"Grounding consistency: the analysis failed ({g['error']})."
    else:
        grounding_line = "Grounding consistency: no scene had both a question and an expression about the same object."
    hist = out[(s0, "all-task")]["dsg_history"]
    img = Path(args.out).parent / "img" / "e1_dsg.png"
    plot_dsg(hist, tasks, out[(s0, "all-task")]["steps"], img)
    stops = sum(1 for h in hist if h[2] == "stop")
    goes = sum(1 for h in hist if h[2] == "go")
    wall = time.perf_counter() - t0
    common.publish(args.out, "E1", [
        "## E1 — single-task vs group-task vs all-task (12-in-1 Table 2)",
        common.header(all_raws[0]["run"]["device"], args.workers),
        f"Setup: preset `{args.preset}`; co-attention trunk dim {p.dim}, {p.v_layers} visual / {p.t_layers} text layers, "
        f"task tokens per dataset, DSG (Δ = 4), round-robin, loss scaling, η·N warm-up; {p.n_train:,} train examples per "
        f"task before the clean split, {p.n_test} test ({p.n_test_retrieval} for retrieval pools); batch {p.batch_size}; "
        f"seeds {seeds} (each its own data, initialisation and batches). Scores ×100, mean ± std over the seeds (best mean "
        "per column in bold): VQA accuracy (vqa, vgqa, gqa), caption→image R@1 (coco-ir, flickr-ir), accuracy at IoU ≥ 0.5 "
        "(refexp tasks), accuracy (nlvr, snli-ve). A difference is a finding only when the mean ± std intervals of the "
        "two arms do not overlap.",
        table,
        sentence,
        grounding_line,
        f"Dynamic Stop-and-Go in the all-task run of seed {s0}: {stops} go→stop and {goes} stop→go transitions "
        "(the paper's Figure 2, left):",
        f"![E1 DSG states]({img.relative_to(Path(args.out).parent)})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, sentence], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
