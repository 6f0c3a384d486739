"""E2 -- 12-in-1 Table 6: ablations of the multi-task recipe on the 12 world V&L tasks.

Rows: task tokens per dataset / per head / none (all with DSG); per-dataset tokens without DSG;
curriculum (the fastest-converging group G4 first, as the paper's Table 6 text says) and
anti-curriculum (the slowest, G1, first) as a pre-phase of a quarter of the run before full
round-robin; and "vanilla" round-robin (no task tokens, no DSG). Every row trains one all-task
model for S × 12 steps (the same budget as E1's all-task model); the table gives each group's mean
score and the 12-task average (×100; per-task primary metrics as in E1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import vl_common as vc  # noqa: E402

VARIANTS = {  # name -> vl_config keyword arguments
    "task token per dataset + DSG": {"task_tokens": "dataset", "dsg": True},
    "task token per head + DSG": {"task_tokens": "head", "dsg": True},
    "no task token + DSG": {"task_tokens": "none", "dsg": True},
    "task token per dataset, w/o DSG": {"task_tokens": "dataset", "dsg": False},
    "curriculum (G4 first) + DSG": {"task_tokens": "dataset", "dsg": True, "curriculum": "curriculum", "curriculum_group": "G4"},
    "anti-curriculum (G1 first) + DSG": {"task_tokens": "dataset", "dsg": True, "curriculum": "anti_curriculum",
                                         "curriculum_group": "G1"},
    "vanilla round-robin (no token, no DSG)": {"task_tokens": "none", "dsg": False},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    vc.add_args(ap, "runs/bench/e2")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    p = vc.VL_PRESETS[args.preset]
    s = common.scaled_steps(p.per_task_steps, args.steps_scale)
    tasks = vc.VL_TASKS
    raws = [vc.vl_config(args.preset, tasks, steps=s * len(tasks), seed=args.seed, device=args.device,
                         out_dir=str(Path(args.runs_dir) / f"v{i}"), name=name, **kw)
            for i, (name, kw) in enumerate(VARIANTS.items())]
    print(f"E2: {len(raws)} all-task runs of {s * len(tasks):,} steps, preset {args.preset}", flush=True)
    prep = vc.prepare_vl_data(raws[:1])

    def label(i, r):
        return f"{r['name']}: average {vc.avg(r['results'], tasks):.1f} ({r['wall_s']:.0f} s)"

    out = common.run_many([(vc.run_vl, (raw,), {}) for raw in raws], workers=args.workers, label=label)
    groups = list(vc.GROUPS)
    cols = [[vc.avg(r["results"], vc.GROUPS[g]) for r in out] for g in groups] + [[vc.avg(r["results"], tasks) for r in out]]
    bold = [common.bold_best(c, 1) for c in cols]
    rows = [[f"{i + 1}", name, *[b[i] for b in bold]] for i, name in enumerate(VARIANTS)]
    table = common.markdown_table(["#", "variant", *[f"{g} ({', '.join(vc.GROUPS[g])})" for g in groups], "average"],
                                  rows, ["---:", "---"] + ["---:"] * (len(groups) + 1))
    per_task = common.markdown_table(
        ["variant", *tasks],
        [[name, *[common.fmt(100 * out[i]["results"][t]["value"], 1) for t in tasks]] for i, name in enumerate(VARIANTS)])
    avgs = {name: cols[-1][i] for i, name in enumerate(VARIANTS)}
    best = max(avgs, key=avgs.get)
    worst = min(avgs, key=avgs.get)
    full, vanilla = avgs["task token per dataset + DSG"], avgs["vanilla round-robin (no token, no DSG)"]
    sentence = (
        f"Best average: {best} ({avgs[best]:.1f}); worst: {worst} ({avgs[worst]:.1f}). The full recipe (per-dataset "
        f"tokens + DSG) scores {full:.1f} against {vanilla:.1f} for vanilla round-robin ({full - vanilla:+.1f} points); "
        f"the paper finds per-dataset tokens + DSG best and vanilla worst."
    )
    wall = time.perf_counter() - t0
    common.publish(args.out, "E2", [
        "## E2 — ablations: task tokens, DSG, curriculum (12-in-1 Table 6)",
        common.header(raws[0]["run"]["device"], args.workers),
        f"Setup: preset `{args.preset}`, the E1 all-task recipe and size, {s * len(tasks):,} steps per run; curriculum "
        f"pre-phases are the first {max(1, s * len(tasks) // 4):,} steps. Group means and the 12-task average, ×100.",
        table,
        sentence,
        "Per task (×100):",
        per_task,
        f"Total wall time: {wall / 60:.1f} min (data preparation {prep:.0f} s).",
    ], [table, sentence], wall, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
