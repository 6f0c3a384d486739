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
~6,000 training steps in all on 2 worker processes.
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
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    p = vc.VL_PRESETS[args.preset]
    s = common.scaled_steps(p.per_task_steps, args.steps_scale)
    f = common.scaled_steps(p.finetune_steps, args.steps_scale)
    tasks = vc.VL_TASKS
    runs = Path(args.runs_dir)

    def cfg(name, task_list):
        return vc.vl_config(args.preset, task_list, steps=s * len(task_list), seed=args.seed, device=args.device,
                            out_dir=str(runs / name), name=name)

    jobs, names = [], []
    all_raw = cfg("all-task", tasks)
    for name, raw in [("all-task", all_raw), *[(f"group-{g}", cfg(f"group-{g}", ts)) for g, ts in vc.GROUPS.items()],
                      *[(f"single-{t}", cfg(f"single-{t}", [t])) for t in tasks]]:
        names.append(name)
        jobs.append((vc.run_vl, (raw,), {"with_grounding": name == "all-task"}))
    print(f"E1: {len(jobs)} runs + {len(tasks)} fine-tunings, S = {s}, F = {f}, preset {args.preset}", flush=True)
    prep = vc.prepare_vl_data([all_raw])
    print(f"  data ready in {prep:.0f} s", flush=True)

    def label(i, r):
        return f"{r['name']}: average {vc.avg(r['results'], list(r['results'])):.1f} ({r['wall_s']:.0f} s)"

    out = dict(zip(names, common.run_many(jobs, workers=args.workers, label=label)))
    ckpt = out["all-task"]["checkpoint"]
    ft_jobs = [(vc.run_vl, (), {"finetune_from": ckpt, "task": t, "finetune_steps": f, "out_dir": str(runs / f"ft-{t}")})
               for t in tasks]
    ft = dict(zip(tasks, common.run_many(ft_jobs, workers=args.workers, label=label)))

    res = {
        "single-task": {t: out[f"single-{t}"]["results"][t] for t in tasks},
        "group-task": {t: out[f"group-{vc.GROUP_OF[t]}"]["results"][t] for t in tasks},
        "all-task": out["all-task"]["results"],
        "all-task → single-task": {t: ft[t]["results"][t] for t in tasks},
    }
    params = {
        "single-task": sum(out[f"single-{t}"]["params"] for t in tasks),
        "group-task": sum(out[f"group-{g}"]["params"] for g in vc.GROUPS),
        "all-task": out["all-task"]["params"],
        "all-task → single-task": sum(ft[t]["params"] for t in tasks),
    }
    labels = {"single-task": f"single-task (12 models × {s} steps)", "group-task": "group-task (4 models, S × group size steps)",
              "all-task": f"all-task (1 model, {s * 12:,} steps)", "all-task → single-task": f"all-task → single-task (+{f} steps each)"}
    keys = list(res)
    cols = [[100 * res[k][t]["value"] for k in keys] for t in tasks] + [[vc.avg(res[k], tasks) for k in keys]]
    bold = [common.bold_best(c, 1) for c in cols]
    metric = vc.metric_names(res["all-task"], tasks)
    rows = [[labels[k], *[b[i] for b in bold], f"{params[k]:,}"] for i, k in enumerate(keys)]
    chance = {t: 100 * res["all-task"][t]["chance"] for t in tasks}
    rows.append(["chance", *[common.fmt(chance[t], 1) for t in tasks], common.fmt(sum(chance.values()) / 12, 1), ""])
    table = common.markdown_table(["setup", *[f"{t} ({metric[t]})" for t in tasks], "average", "parameters"], rows)

    a_single, a_all, a_ft, a_group = (vc.avg(res[k], tasks) for k in ("single-task", "all-task", "all-task → single-task", "group-task"))
    wins = sum(res["all-task"][t]["value"] >= res["single-task"][t]["value"] for t in tasks)
    sentence = (
        f"All-task {'beats' if a_all > a_single else 'does not beat'} single-task on average: {a_all:.1f} vs {a_single:.1f} "
        f"({a_all - a_single:+.1f} points), at or above single-task on {wins} of 12 tasks, with {params['all-task']:,} "
        f"parameters instead of {params['single-task']:,} ({params['single-task'] / params['all-task']:.1f}× fewer). "
        f"Group-task averages {a_group:.1f}; fine-tuning each task from the all-task model gives {a_ft:.1f} "
        f"({a_ft - a_all:+.1f} over all-task, {a_ft - a_single:+.1f} over single-task)."
    )
    g = out["all-task"]["grounding"] or {}
    if g.get("weighted_pairs"):
        grounding_line = (
            f"Grounding consistency (12-in-1 section 5) of the all-task model: on {g['images']} scenes with both VQA "
            f"questions and test referring expressions (refcoco, refcoco+, refcocog) about the same object, "
            f"{g['weighted_pairs']} question–expression pairs; the question is answered right and the referent "
            f"localised in {100 * g['consistency']:.1f}% of them (question accuracy {100 * g['question_accuracy']:.1f}%, "
            f"localised {100 * g['localised_rate']:.1f}%, localised given a right answer "
            f"{100 * g['localised_given_correct']:.1f}%).")
    elif g.get("error"):
        grounding_line = f"Grounding consistency: the analysis failed ({g['error']})."
    else:
        grounding_line = "Grounding consistency: no scene had both a question and an expression about the same object."
    hist = out["all-task"]["dsg_history"]
    img = Path(args.out).parent / "img" / "e1_dsg.png"
    plot_dsg(hist, tasks, out["all-task"]["steps"], img)
    stops = sum(1 for h in hist if h[2] == "stop")
    goes = sum(1 for h in hist if h[2] == "go")
    wall = time.perf_counter() - t0
    common.publish(args.out, "E1", [
        "## E1 — single-task vs group-task vs all-task (12-in-1 Table 2)",
        common.header(all_raw["run"]["device"], args.workers),
        f"Setup: preset `{args.preset}`; co-attention trunk dim {p.dim}, {p.v_layers} visual / {p.t_layers} text layers, "
        f"task tokens per dataset, DSG (Δ = 4), round-robin, loss scaling, η·N warm-up; {p.n_train:,} train examples per "
        f"task before the clean split, {p.n_test} test ({p.n_test_retrieval} for retrieval pools); batch {p.batch_size}; seed {args.seed}. "
        "Scores ×100: VQA accuracy (vqa, vgqa, gqa), caption→image R@1 (coco-ir, flickr-ir), accuracy at IoU ≥ 0.5 "
        "(refexp tasks), accuracy (nlvr, snli-ve).",
        table,
        sentence,
        grounding_line,
        f"Dynamic Stop-and-Go in the all-task run: {stops} go→stop and {goes} stop→go transitions "
        "(the paper's Figure 2, left):",
        f"![E1 DSG states]({img.relative_to(Path(args.out).parent)})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, sentence], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
