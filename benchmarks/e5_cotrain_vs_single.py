"""E5 -- PolyViT Tables 2-3: one co-trained model vs single-task models, and linear probes of its
trunk on held-out tasks.

(a) Seven single-task models (one per world task: shapes, count, digits, motion, moving-digits,
sounds, spoken-digits), each trained S steps on its own task, against one model co-trained on all
seven with ``L_adapt = 0`` (everything shared but encoders and heads) and one with
``L_adapt = depth / 2`` (the first half of the trunk modality-specific), each trained S x 7 steps with
the uniform schedule -- the same total compute as the seven single-task models together. All models
have the preset's size (small: dim 128, depth 4, 4 heads). The table gives per-task test top-1, the
mean, and the total parameters of each setup (the sum over the seven single-task models; each
co-trained model's ``parameter_counts()["total"]``).

(b) Linear probes (``cotrain.train.probe.linear_probe``: frozen encoders + trunk, a new linear head
on the class-token features) on tasks the trunk never saw: one model co-trained (L_adapt = 0, uniform,
S x 4 steps) on shapes, digits, motion, sounds is probed on count, moving-digits and spoken-digits;
the baselines are a randomly initialised model of the same architecture (what a probe must beat) and
the single-task model of the same modality from (a) (shapes for count, motion for moving-digits,
sounds for spoken-digits).

Choice of S (small preset): S = 300 steps per task, as in E4 (see its docstring for the per-step
costs). Seven single-task models, two 7-task co-trained models, one 4-task model and their probes
run longest first on 2 worker processes: ~8-10 min on two free cores. The full preset
(GPU) uses S = 3,000.

spoken-digits needs espeak-ng; without it the task is dropped from (a) and (b), with a note.

    python benchmarks/e5_cotrain_vs_single.py [--preset small|full] [--steps-scale 1.0]
        [--out docs/results.md] [--runs-dir runs/bench/e5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTION = "E5"
PROBE_TRAIN = ["shapes", "digits", "motion", "sounds"]
HELD_OUT = {"count": "shapes", "moving-digits": "motion", "spoken-digits": "sounds"}  # held-out -> single-task source
MATCH = 0.02  # within 2 points counts as "matches"


def build_jobs(args, tasks: list[str], held_out: dict[str, str]) -> tuple[list[str], list[tuple]]:
    """(names, jobs), longest first so the two workers finish together."""
    s = common.per_task_steps(args.preset, args.steps_scale)
    p = common.PRESETS[args.preset]
    runs = Path(args.runs_dir)

    def cfg(name, task_list, steps, l_adapt=0):
        raw = common.base_config(
            args.preset, tasks=task_list, steps=steps, seed=args.seed, device=args.device,
            out_dir=str(runs / name), name=f"e5-{name}", threads=args.threads,
        )
        raw["model"]["l_adapt"] = l_adapt
        common.validate(raw)
        return raw

    probe_rows = {t: common.task_entry(t, args.preset) for t in held_out}
    half = p.depth // 2
    probe_train = [t for t in PROBE_TRAIN if t in tasks]
    named = [
        (f"cotrain-L{half}", cfg(f"cotrain-L{half}", tasks, s * len(tasks), half), {}),
        ("cotrain-L0", cfg("cotrain-L0", tasks, s * len(tasks)), {}),
        ("cotrain4-L0", cfg("cotrain4-L0", probe_train, s * len(probe_train)),
         {"probe_tasks": list(probe_rows.values())}),
    ]
    # single-task runs, the video ones (twice as slow) first
    order = sorted(tasks, key=lambda t: (common_modality(t) != "video", tasks.index(t)))
    for t in order:
        probes = [probe_rows[h] for h, src in held_out.items() if src == t]
        named.append((f"single-{t}", cfg(f"single-{t}", [t], s), {"probe_tasks": probes}))
    named.append(("random-init", cfg("random-init", probe_train, s * len(probe_train)),
                  {"probe_tasks": list(probe_rows.values()), "train": False}))
    names = [n for n, _, _ in named]
    jobs = [(common.run_experiment, (raw,), kw) for _, raw, kw in named]
    return names, jobs


def common_modality(task: str) -> str:
    from cotrain.data.world import WORLD_TASKS

    return WORLD_TASKS[task]


def verdict(diff: float) -> str:
    if diff > MATCH:
        return f"beats it by {diff * 100:.1f} points"
    if diff >= -MATCH:
        return f"matches it (within {MATCH * 100:.0f} points: {diff * 100:+.1f})"
    return f"trails it by {-diff * 100:.1f} points"


def plot(setups: dict[str, dict[str, float]], tasks, probes: dict[str, dict[str, float]], chance_probe, path: Path) -> None:
    import numpy as np

    plt = common.plt()
    has_probes = bool(probes)
    fig, axes = plt.subplots(1, 2 if has_probes else 1, figsize=(13 if has_probes else 9, 4.2),
                             gridspec_kw={"width_ratios": [2.2, 1]} if has_probes else None)
    axes = np.atleast_1d(axes)
    cols = tasks + ["mean"]
    x = np.arange(len(cols))
    w = 0.8 / len(setups)
    ax = axes[0]
    for i, (label, vals) in enumerate(setups.items()):
        v = [vals[t] for t in tasks]
        ax.bar(x - 0.4 + w * (i + 0.5), v + [common.mean(v)], w, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(cols, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test top-1")
    ax.set_title("(a) single-task vs co-trained")
    ax.legend(fontsize=8)
    if has_probes:
        ax = axes[1]
        held = list(next(iter(probes.values())))
        x = np.arange(len(held))
        w = 0.8 / len(probes)
        for i, (label, vals) in enumerate(probes.items()):
            ax.bar(x - 0.4 + w * (i + 0.5), [vals[t] for t in held], w, label=label)
        ax.scatter(x, [chance_probe[t] for t in held], marker="_", s=900, color="black", zorder=3, label="chance")
        ax.set_xticks(x)
        ax.set_xticklabels(held, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_title("(b) linear probes on held-out tasks")
        ax.legend(fontsize=8)
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(ap, runs_dir="runs/bench/e5")
    args = ap.parse_args(argv)
    common.check_args(args)
    t0 = time.perf_counter()

    tasks, dropped = common.available_tasks(common.DEMO_TASKS)
    note = common.espeak_note(dropped)
    if note:
        print(note, flush=True)
    held_out = {h: src for h, src in HELD_OUT.items() if h in tasks and src in tasks}
    p = common.PRESETS[args.preset]
    s = common.per_task_steps(args.preset, args.steps_scale)
    half = p.depth // 2
    names, jobs = build_jobs(args, tasks, held_out)
    device = jobs[0][1][0]["run"]["device"]
    print(f"E5: {len(jobs)} runs ({len(tasks)} single-task, 2 co-trained, 1 four-task co-trained + probes, 1 random init), "
          f"S = {s} steps per task, preset {args.preset}, device {device}", flush=True)
    prep = common.prepare_data([j[1][0] for j in jobs], extra_tasks=[common.task_entry(t, args.preset) for t in held_out])
    print(f"  data ready in {prep:.0f} s", flush=True)

    def label(i, r):
        vals = [v["value"] for v in r["results"].values()]
        acc = f"mean test {common.mean(vals):.3f}" if vals else "untrained"
        pr = ", ".join(f"probe {t} {v['test']:.3f}" for t, v in r["probes"].items())
        return f"{names[i]}: {acc}{'; ' + pr if pr else ''} ({r['wall_s']:.0f} s)"

    out = dict(zip(names, common.run_many(jobs, workers=args.workers, threads=args.threads, label=label)))

    # ------------------------------------------------------------------ (a)
    single = {t: out[f"single-{t}"]["results"][t]["value"] for t in tasks}
    single_params = sum(out[f"single-{t}"]["params"]["total"] for t in tasks)
    co = {L: out[f"cotrain-L{L}"] for L in (0, half)}
    setups = {"single-task": single, **{f"co-trained, L_adapt={L}": {t: co[L]["results"][t]["value"] for t in tasks} for L in co}}
    params = {"single-task": single_params, **{f"co-trained, L_adapt={L}": co[L]["params"]["total"] for L in co}}
    row_labels = {
        "single-task": f"single-task ({len(tasks)} models, {s:,} steps each)",
        **{f"co-trained, L_adapt={L}": f"co-trained, L_adapt = {L}{' (L/2)' if L else ''} ({s * len(tasks):,} steps)" for L in co},
    }
    keys = list(setups)
    cols = [[setups[k][t] for k in keys] for t in tasks] + [[common.mean(setups[k].values()) for k in keys]]
    bold = [common.bold_best(c) for c in cols]
    chance = {t: co[0]["results"][t]["chance"] for t in tasks}
    rows_a = [[row_labels[k], *[b[i] for b in bold], f"{params[k]:,}"] for i, k in enumerate(keys)]
    rows_a.append(["chance", *[common.fmt(chance[t]) for t in tasks], common.fmt(common.mean(chance.values())), ""])
    table_a = common.markdown_table(["setup", *tasks, "mean", "parameters"], rows_a)

    m_single = common.mean(single.values())
    sent_a = []
    for L in co:
        k = f"co-trained, L_adapt={L}"
        m = common.mean(setups[k].values())
        wins = sum(setups[k][t] >= single[t] - 1e-9 for t in tasks)
        sent_a.append(
            f"Co-trained with L_adapt = {L}: mean test top-1 {m:.3f} against {m_single:.3f} for the single-task models, "
            f"i.e. it {verdict(m - m_single)}, with {params[k]:,} parameters instead of {single_params:,} "
            f"({single_params / params[k]:.1f}× fewer); it is at or above single-task on {wins} of {len(tasks)} tasks."
        )

    # ------------------------------------------------------------------ (b)
    held = list(held_out)
    table_b, sent_b, probe_plot, chance_probe = "", [], {}, {}
    if held:
        rand = out["random-init"]["probes"]
        cot = out["cotrain4-L0"]["probes"]
        sing = {h: out[f"single-{src}"]["probes"][h] for h, src in held_out.items()}
        chance_probe = {h: cot[h]["chance"] for h in held}
        probe_plot = {
            "random init": {h: rand[h]["test"] for h in held},
            "single-task trunk": {h: sing[h]["test"] for h in held},
            "co-trained trunk": {h: cot[h]["test"] for h in held},
        }
        rows_b = []
        for h in held:
            b = common.bold_best([probe_plot[k][h] for k in probe_plot])
            rows_b.append([h, common.fmt(chance_probe[h]), b[0], f"{b[1]} (`{held_out[h]}`)", b[2]])
        means = [common.mean(probe_plot[k].values()) for k in probe_plot]
        b = common.bold_best(means)
        rows_b.append(["mean", common.fmt(common.mean(chance_probe.values())), b[0], b[1], b[2]])
        table_b = common.markdown_table(
            ["held-out task", "chance", "random init", "single-task trunk (model)",
             f"co-trained trunk ({', '.join(PROBE_TRAIN)})"], rows_b)
        m_rand, m_sing, m_cot = means
        beat_rand = sum(probe_plot["co-trained trunk"][h] > probe_plot["random init"][h] for h in held)
        beat_sing = sum(probe_plot["co-trained trunk"][h] > probe_plot["single-task trunk"][h] for h in held)
        sent_b.append(
            f"Linear probes on the {len(held)} held-out tasks: the co-trained trunk reaches a mean test accuracy of "
            f"{m_cot:.3f}, against {m_sing:.3f} for the single-task trunks of the same modality and {m_rand:.3f} for a "
            f"randomly initialised model (chance {common.mean(chance_probe.values()):.3f}). It beats the random "
            f"initialisation on {beat_rand} of {len(held)} tasks ({(m_cot - m_rand) * 100:+.1f} points on average) and "
            f"the single-task trunk on {beat_sing} of {len(held)} ({(m_cot - m_sing) * 100:+.1f} points)."
        )
        cot_in = out["cotrain4-L0"]["results"]
        sent_b.append(
            "The probed co-trained model's own test top-1 on its training tasks: "
            + ", ".join(f"{t} {cot_in[t]['value']:.3f}" for t in cot_in) + "."
        )

    img, link = common.img_path(args.out, "e5_cotrain.png")
    plot(setups, tasks, probe_plot, chance_probe, img)
    wall = time.perf_counter() - t0
    setup = (
        f"Setup: preset `{args.preset}`{f' × steps-scale {args.steps_scale:g}' if args.steps_scale != 1 else ''}; "
        f"every model dim {p.dim}, depth {p.depth} (L = {p.depth}), {p.num_heads} heads; batch {p.batch_size}; "
        f"AdamW lr {p.lr:g}, 5% warm-up, cosine decay; {p.n_train:,} train / {p.n_test:,} test examples per task; "
        f"seed {args.seed}. S = {s} steps per task: single-task models train S steps, co-trained models "
        f"S × {len(tasks)} steps with the uniform schedule (equal total compute). Linear probes: "
        f"full-batch softmax regression on standardised class-token features, 100 epochs, test accuracy."
    )
    common.publish(args.out, SECTION, [
        "## E5 — co-training vs single-task, and linear probes (PolyViT Tables 2–3)",
        common.header(device, args.workers, args.threads, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        setup,
        note,
        "### (a) Single-task vs co-trained: test top-1 per task (best per column in bold)",
        table_a,
        *sent_a,
        "### (b) Linear probes of the frozen trunk on held-out tasks (test accuracy, best per row in bold)" if held else "",
        table_b,
        *sent_b,
        f"![E5 co-training vs single-task]({link})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table_a, "\n".join(sent_a), table_b, "\n".join(sent_b)], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
