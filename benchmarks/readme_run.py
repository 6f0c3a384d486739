"""Run an embedded config as ``cotrain train`` does (``--demo``, ``--mix``, ``--unit`` or ``--cvlp``) and write its
per-task table into README.md (section ``DEMO``, ``MIX``, ``UNIT`` or ``CVLP``). For ``cvlp`` it then
fine-tunes the embedded ``cvlp-downstream`` config from the pretrained run, as ``cotrain finetune
runs/cvlp --config cvlp-downstream`` does, and writes that table and the contrastive statistics too.

The tables in the README are this command's output, with the command, machine and date above them:

    python benchmarks/readme_run.py --config demo [--fresh-data] [--readme README.md]
    python benchmarks/readme_run.py --config mix --fresh-data
    python benchmarks/readme_run.py --config cvlp --fresh-data

It times the whole job as a user sees it after the one-time install: world generation (skipped when
the cache already holds the data: pass ``--fresh-data`` to generate into a new folder), training,
test evaluation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from cotrain.cli import _without_missing_speech  # noqa: E402
from cotrain.config import default_config_path, load_config  # noqa: E402
from cotrain.data.sources import build_all_task_data  # noqa: E402
from cotrain.train.trainer import Trainer, format_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["demo", "mix", "unit", "cvlp"], default="demo", help="the embedded config to run")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--fresh-data", action="store_true", help="generate the world into a new temporary folder (time it)")
    args = ap.parse_args(argv)
    overrides = ["run.progress=false", f"run.out_dir=runs/{args.config}"]
    tmp = tempfile.TemporaryDirectory() if args.fresh_data else None
    if tmp is not None:
        overrides.append(f"data.root={tmp.name}")
    cfg = _without_missing_speech(load_config(default_config_path(args.config), overrides))
    t0 = time.perf_counter()
    data, tok = build_all_task_data(cfg)
    t_data = time.perf_counter() - t0
    trainer = Trainer(cfg, data=data, tokenizer=tok)
    t1 = time.perf_counter()
    results = trainer.fit()
    t_fit = time.perf_counter() - t1
    params = trainer.model.parameter_counts()["total"]
    beat = sum(r["value"] > r["chance"] for r in results.values())
    extra = cvlp_parts(trainer, tmp.name if tmp else None) if args.config == "cvlp" else []
    total = time.perf_counter() - t0
    md = "\n\n".join([
        common.header("cpu", 1, threads=__import__("torch").get_num_threads(), argv=[sys.argv[0], *(argv or sys.argv[1:])]),
        format_results(results, {s.name: s for s in trainer.specs}),
        f"{beat}/{len(results)} tasks beat chance; one model of {params:,} parameters. "
        f"Data {'generated' if args.fresh_data else 'loaded'} in {t_data:.0f} s; training and test evaluation "
        f"{t_fit:.0f} s" + (f"; with the fine-tuning below, whole job {total:.0f} s ({total / 60:.1f} min)." if extra else
                            f"; whole job {total:.0f} s ({total / 60:.1f} min)."),
        *extra,
    ])
    common.write_section(args.readme, args.config.upper(), md)
    print(md)
    return 0


def cvlp_parts(trainer, data_root: str | None) -> list[str]:
    """The pretraining's last logged contrastive statistics, then ``cvlp-downstream`` fine-tuned from
    it (the load report and the test table)."""
    from cotrain.train.logging import read_log
    from cotrain.train.pretrained import finetune_from_config, format_report

    last = [r for r in read_log(trainer.out_dir) if r["kind"] == "train"][-1]
    stats = " | ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in last.items() if "/" in k and not k.startswith("loss/"))
    overrides = ["run.progress=false"] + ([f"data.root={data_root}"] if data_root else [])
    t0 = time.perf_counter()
    ft, results, report = finetune_from_config(trainer.last_checkpoint, "cvlp-downstream", overrides=overrides,
                                               out_dir="runs/cvlp-downstream")
    took = time.perf_counter() - t0
    return [
        f"Training log at step {last['step']} (means over the last {trainer.cfg.run.log_every} steps): {stats}",
        f"Then `cotrain finetune runs/cvlp --config cvlp-downstream` ({took:.0f} s, data included): encoders and "
        f"trunk loaded, heads new:",
        "```\n" + format_report(report) + "\n```",
        format_results(results, {s.name: s for s in ft.specs}),
    ]


if __name__ == "__main__":
    sys.exit(main())
