"""E3 -- 12-in-1 Table 3: pairwise (and triplet) transfer between one representative task per group
(vqa, coco-ir, refcoco, nlvr).

Each task alone trains S steps; each pair 2S and each triplet 3S steps (equal steps per task) with
the E1 recipe. Cell (row task, column partner) of the matrix is the row task's relative change
from its single-task score when co-trained with the partner, in % (12-in-1 reports the same
quantity); the diagonal is 0. The heat map is written to ``docs/img/e3_transfer.png``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import vl_common as vc  # noqa: E402


def rel(new: float, base: float) -> float:
    return 100.0 * (new - base) / max(abs(base), 1e-9)


def plot(tasks: list[str], matrix: dict, path: Path) -> None:
    plt = common.plt()
    import numpy as np

    m = np.array([[matrix[a][b] for b in tasks] for a in tasks])
    lim = max(5.0, float(np.abs(m).max()))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_xlabel("co-trained with")
    ax.set_ylabel("task scored")
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{m[i, j]:+.1f}", ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=ax, label="% change vs single-task")
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    vc.add_args(ap, "runs/bench/e3")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    p = vc.VL_PRESETS[args.preset]
    s = common.scaled_steps(p.per_task_steps, args.steps_scale)
    tasks = list(vc.REPRESENTATIVE.values())
    combos = [(t,) for t in tasks] + list(itertools.combinations(tasks, 2)) + list(itertools.combinations(tasks, 3))
    raws = [vc.vl_config(args.preset, list(c), steps=s * len(c), seed=args.seed, device=args.device,
                         out_dir=str(Path(args.runs_dir) / "+".join(c)), name="+".join(c)) for c in combos]
    print(f"E3: {len(raws)} runs ({len(tasks)} single, pairs, triplets), S = {s}, preset {args.preset}", flush=True)
    prep = vc.prepare_vl_data([vc.vl_config(args.preset, tasks, out_dir=str(Path(args.runs_dir) / "prep"), name="prep")])

    def label(i, r):
        return f"{r['name']}: average {vc.avg(r['results'], list(r['results'])):.1f} ({r['wall_s']:.0f} s)"

    out = dict(zip(combos, common.run_many([(vc.run_vl, (raw,), {}) for raw in raws], workers=args.workers, label=label)))
    single = {t: out[(t,)]["results"][t]["value"] for t in tasks}
    matrix = {a: {b: 0.0 if a == b else rel(out[tuple(sorted((a, b), key=tasks.index))]["results"][a]["value"], single[a])
                  for b in tasks} for a in tasks}
    rows = [[a, common.fmt(100 * single[a], 1), *[f"{matrix[a][b]:+.1f}" if a != b else "–" for b in tasks]] for a in tasks]
    table = common.markdown_table(["task (metric ×100 alone)", "single-task", *[f"+ {b}" for b in tasks]], rows)
    trip_rows = []
    for c in combos:
        if len(c) == 3:
            trip_rows.append([" + ".join(c), *[f"{rel(out[c]['results'][t]['value'], single[t]):+.1f}" if t in c else "–"
                                               for t in tasks]])
    trip = common.markdown_table(["triplet", *tasks], trip_rows)
    gains = [matrix[a][b] for a in tasks for b in tasks if a != b]
    helped = sum(g > 0 for g in gains)
    best = max(((a, b) for a in tasks for b in tasks if a != b), key=lambda ab: matrix[ab[0]][ab[1]])
    sentence = (f"{helped} of {len(gains)} task pairings improve the scored task over training it alone; the largest gain "
                f"is {best[0]} with {best[1]} ({matrix[best[0]][best[1]]:+.1f}%), the mean change {sum(gains) / len(gains):+.1f}%.")
    img = Path(args.out).parent / "img" / "e3_transfer.png"
    plot(tasks, matrix, img)
    wall = time.perf_counter() - t0
    common.publish(args.out, "E3", [
        "## E3 — pairwise transfer between task groups (12-in-1 Table 3)",
        common.header(raws[0]["run"]["device"], args.workers),
        f"Setup: preset `{args.preset}`, the E1 recipe and size; S = {s} steps per task (a pair trains {2 * s}, a triplet "
        f"{3 * s}). Cells: % change of the row task's score from its single-task score when co-trained with the column task.",
        table,
        "Triplets (% change of each member from single-task):",
        trip,
        sentence,
        f"![E3 transfer]({img.relative_to(Path(args.out).parent)})",
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, sentence], wall, [img])
    return 0


if __name__ == "__main__":
    sys.exit(main())
