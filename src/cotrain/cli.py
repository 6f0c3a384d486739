"""The ``cotrain`` command line: train, pretrain, eval, finetune, probe, predict, info, data generate / clean / mine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import InputError
from .train.threads import set_openmp_defaults

EPILOG = """examples:
  cotrain train --demo                                 co-train the embedded 7-task demo
  cotrain train my.yaml run.steps=500 model.l_adapt=2   a config file plus overrides
  cotrain train my.yaml --resume                        continue run.out_dir's latest checkpoint exactly
  cotrain eval runs/demo                                test-set metrics of a run's latest checkpoint
  cotrain probe runs/demo --task sounds                 linear probe of the frozen trunk on a task
  cotrain predict runs/demo --task shapes img.png       predict from files (or text for text tasks)
  cotrain info                                          model sizes (L_adapt = 0 and L/2), tasks, environment
  cotrain data generate --demo                          generate and cache the world data of a config
  cotrain data clean --vl                               the clean multi-task split of the 12 V&L tasks
  cotrain data mine runs/vl12 --task coco-ir           hard negatives mined by a trained model (retrieval.mined)
  cotrain finetune runs/vl12 --task refcoco             multi-task -> single-task fine-tuning
  cotrain train --mix                                  one model on image, video, audio, text and V&L tasks at once
  cotrain train --unit                                 UniT: detection, VQA, visual entailment and text tasks in one encoder-decoder
  cotrain pretrain --cvlp                              CVLP: contrastive visual-linguistic pretraining on scene captions
  cotrain finetune runs/cvlp --config cvlp-downstream  load a pretrained trunk into a downstream config (new heads)
"""


def _add_config_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("config", nargs="?", help="experiment YAML file (see src/cotrain/configs/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. run.steps=500 tasks.shapes.batch_size=16")
    p.add_argument("--demo", action="store_true", help="use the embedded demo config (7 image / video / audio tasks)")
    p.add_argument("--vl", action="store_true", help="use the embedded vision-and-language config (the 12 tasks of 12-in-1)")
    p.add_argument("--mix", action="store_true", help="use the embedded mixed config: one model on image, video, audio, "
                   "text and vision-and-language tasks at once")
    p.add_argument("--unit", action="store_true", help="use the embedded UniT config: one encoder-decoder transformer on "
                   "detection, VQA, visual entailment and two text tasks, a shared decoder with task queries")
    p.add_argument("--cvlp", action="store_true", help="use the embedded CVLP pretraining config: masked language "
                   "modelling, image-text matching and the visual contrastive loss (momentum key network, queue, layer "
                   "drop) on the world's scene captions")


def _load_cfg(args: argparse.Namespace):
    from .config import ConfigError, default_config_path, load_config

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # `cotrain train --demo run.steps=10`
        overrides.insert(0, config)
        config = None
    flags = (("demo", "demo"), ("vl", "vl12"), ("mix", "mix"), ("unit", "unit"), ("cvlp", "cvlp"))
    embedded = [name for flag, name in flags if getattr(args, flag, False)]
    if len(embedded) > 1:
        raise ConfigError("give one of --demo, --vl, --mix, --unit and --cvlp")
    if embedded and config is None:
        path = default_config_path(embedded[0])
    elif config is None:
        raise ConfigError("give a config file, or --demo / --vl / --mix / --unit / --cvlp for an embedded default")
    else:
        path = Path(config)
    cfg = load_config(path, overrides)
    if embedded and config is None:
        cfg = _without_missing_speech(cfg)
    return cfg


def _without_missing_speech(cfg):
    """Drop spoken-digits from an embedded config when espeak-ng is not installed (with a note)."""
    from .data.world import espeak_available

    if espeak_available():
        return cfg
    print("note: espeak-ng is not installed, so the demo skips spoken-digits (apt-get install espeak-ng)", file=sys.stderr)
    tasks = [t for t in cfg.tasks if t.source.name != "spoken-digits"]
    return cfg.model_copy(update={"tasks": tasks})


# ---------------------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from .data.sources import build_all_task_data
    from .train.trainer import Trainer, format_results

    if args.allow_inexact_resume and args.resume is None:
        raise InputError("--allow-inexact-resume only applies with --resume")
    cfg = _load_cfg(args)
    if args.out:
        cfg.run.out_dir = args.out
    if args.quiet:
        cfg.run.progress = False
    t0 = time.perf_counter()
    print(f"[cotrain] {cfg.name}: {len(cfg.tasks)} tasks, {cfg.run.steps} steps, schedule {cfg.schedule.kind} -> {cfg.run.out_dir}")
    data, tokenizer = build_all_task_data(cfg, progress=cfg.run.progress)
    t_data = time.perf_counter() - t0
    resume = None
    if args.resume is not None:
        resume = args.resume or cfg.run.out_dir
    trainer = Trainer(cfg, data=data, tokenizer=tokenizer, resume=resume, allow_inexact_resume=args.allow_inexact_resume)
    counts = trainer.model.parameter_counts()
    print(f"[cotrain] data ready in {t_data:.1f}s; model {counts['total'] / 1e6:.2f}M parameters; starting at step {trainer.step}")
    results = trainer.fit()
    tm = trainer.timing
    print(f"[cotrain] trained in {tm.get('train_s', 0.0):.1f}s (validation {tm.get('val_s', 0.0):.1f}s of it); "
          f"test evaluation {tm.get('test_s', 0.0):.1f}s; checkpoint {trainer.last_checkpoint}")
    print(format_results(results, {s.name: s for s in trainer.specs}))
    beat = sum(r["value"] > r["chance"] for r in results.values())
    print(f"[cotrain] {beat}/{len(results)} tasks beat chance; total wall time {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """``cotrain train`` for a config with a pretraining task, then the way to fine-tune."""
    from .config import ConfigError
    from .info import _data_head

    cfg = _load_cfg(args)

    def head_kind(task) -> str | None:  # declared in model.heads, else what the task's data implies
        declared = cfg.model.heads.get(task.head_key)
        return declared.type if declared is not None and declared.type else _data_head(task, cfg)[0]

    if not any(head_kind(t) == "pretrain" for t in cfg.tasks):
        raise ConfigError(f"config {cfg.name!r} has no pretraining task (a task whose head has type: pretrain); "
                          "train it with `cotrain train`")
    code = cmd_train(args)
    out = args.out or cfg.run.out_dir
    print(f"[cotrain] fine-tune it: cotrain finetune {out} --config DOWNSTREAM.yaml"
          + ("   (e.g. --config cvlp-downstream)" if getattr(args, "cvlp", False) else ""))
    return code


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import load
    from .data.sources import build_all_task_data
    from .data.transforms import build_transforms
    from .train.evaluate import evaluate_task
    from .train.trainer import format_results

    pred = load(args.checkpoint)
    cfg = pred.cfg
    if args.data_root:
        cfg.data.root = args.data_root
    tasks = args.tasks.split(",") if args.tasks else pred.tasks
    for t in tasks:
        pred.spec(t)
    cfg = cfg.model_copy(update={"tasks": [t for t in cfg.tasks if t.name in tasks]})
    data, _ = build_all_task_data(cfg, vocab_file=pred.checkpoint / "vocab.txt" if pred.tokenizer else None)
    results = {
        t.name: evaluate_task(
            pred.model, t.name, data[t.name], pred.spec(t.name).metric, args.split, t.eval_batch_size or 128,
            options=cfg.run, transforms=build_transforms(t.transforms, pred.tokenizer), retrieval=t.retrieval,
        )
        for t in cfg.tasks
    }
    seconds = sum(r["eval_time_s"] for r in results.values())
    print(f"[cotrain] {pred.checkpoint} on {args.split}, evaluated in {seconds:.1f}s")
    print(format_results(results, pred.specs))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .train.finetune import finetune
    from .train.trainer import format_results

    if (args.task is None) == (args.config is None):
        raise InputError("give --task TASK (multi-task -> single-task) or --config DOWNSTREAM.yaml (pretrained -> "
                         "downstream), not both")
    t0 = time.perf_counter()
    if args.config is not None:
        return _finetune_from_config(args, t0)
    trainer, results, transfer = finetune(
        args.checkpoint, args.task, steps=args.steps, out_dir=args.out, overrides=list(args.overrides),
        data_root=args.data_root,
    )
    print(f"[cotrain] fine-tuned {args.task} from {args.checkpoint} ({transfer['copied']} tensors transferred, "
          f"{transfer['skipped']} new) in {time.perf_counter() - t0:.1f}s (test evaluation "
          f"{trainer.timing.get('test_s', 0.0):.1f}s of it); checkpoint {trainer.last_checkpoint}")
    print(format_results(results, {s.name: s for s in trainer.specs}))
    return 0


def _finetune_from_config(args: argparse.Namespace, t0: float) -> int:
    from .train.pretrained import finetune_from_config, format_report
    from .train.trainer import format_results

    if args.steps is not None:
        args.overrides = [f"run.steps={args.steps}", *args.overrides]
    trainer, results, report = finetune_from_config(args.checkpoint, args.config, overrides=list(args.overrides),
                                                    out_dir=args.out, data_root=args.data_root, quiet=args.quiet)
    print(f"[cotrain] {trainer.cfg.name} from the pretrained encoders and trunk of {args.checkpoint} "
          f"(report: {trainer.out_dir / 'pretrained.json'}):")
    print(format_report(report))
    print(f"[cotrain] fine-tuned in {time.perf_counter() - t0:.1f}s; checkpoint {trainer.last_checkpoint}")
    print(format_results(results, {s.name: s for s in trainer.specs}))
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .train.probe import probe_checkpoint

    result = probe_checkpoint(
        args.checkpoint, args.task, epochs=args.epochs, n_train=args.n_train, seed=args.seed, data_root=args.data_root
    )
    print(
        f"[cotrain] linear probe of {args.checkpoint} on {args.task} ({result['inputs']}, trunk frozen): "
        f"val {result['val']:.3f}  test {result['test']:.3f}  chance {result['chance']:.3f}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .api import load, predict_many

    pred = load(args.checkpoint)
    spec = pred.spec(args.task)
    if len(spec.inputs) > 1:
        return _predict_vl(pred, args)
    if args.text or args.image:
        raise InputError(f"task {args.task!r} reads {spec.inputs[0]}: give INPUT files (or sentences for a text task), "
                         "not --text / --image (those are for tasks that read an image and a text)")
    if args.glue_tsv:
        args.inputs = list(args.inputs) + _glue_texts(pred, args)
    if not args.inputs:
        raise InputError(f"task {args.task!r} needs INPUT files (or sentences for a text task)")
    rows = predict_many(pred, args.task, args.inputs, batch_size=args.batch_size)
    if spec.head_kind == "detect":
        return _print_detections(args, rows)
    if args.draw:
        raise InputError(f"--draw draws detections; task {args.task!r} is a {spec.head_kind} task")
    for inp, row in zip(args.inputs, rows):
        if args.json:
            print(json.dumps({"input": inp, **row}))
        else:
            alts = ", ".join(f"{k} {v:.3f}" for k, v in list(row["scores"].items())[: args.top_k])
            print(f"{inp}\t{row['label']}\t{row['score']:.3f}\t({alts})")
    return 0


def _glue_texts(pred, args: argparse.Namespace) -> list[str]:
    """The texts of a GLUE TSV (a test file without labels, or any split) for a task trained on GLUE."""
    from .data.formats.glue import read_glue_unlabeled

    source = pred.cfg.task(args.task).source
    if source.kind != "glue":
        raise InputError(f"--glue-tsv reads a GLUE file for a task trained on GLUE; task {args.task!r} was trained on "
                         f"a {source.kind} source")
    return read_glue_unlabeled(args.glue_tsv, source.glue_task)


def _print_detections(args: argparse.Namespace, rows: list[dict]) -> int:
    """Each input, then one line per object: label (attribute), score, box; ``--draw`` writes the
    picture with its boxes (one input: that file; several: ``out-<i>.png``)."""
    from .draw import draw_detections

    for i, (inp, row) in enumerate(zip(args.inputs, rows)):
        if args.json:
            print(json.dumps({"input": inp, **row}))
        else:
            print(f"{inp}\t{len(row['objects'])} objects")
            for obj in row["objects"]:
                attr = f" ({obj['attribute']})" if "attribute" in obj else ""
                print(f"  {obj['label']}{attr}\t{obj['score']:.3f}\tbox {obj['box']}")
        if args.draw:
            out = Path(args.draw)
            if len(args.inputs) > 1:
                out = out.with_name(f"{out.stem}-{i}{out.suffix}")
            draw_detections(inp, row["objects"], out)
            if not args.json:
                print(f"  drawn to {out}")
    return 0


def _predict_vl(pred, args: argparse.Namespace) -> int:
    if not args.text or not args.image:
        raise InputError(f"task {args.task!r} is vision-and-language: give --text and --image (twice for nlvr; "
                         "every candidate image for retrieval)")
    if args.inputs:
        raise InputError(f"task {args.task!r} takes --text and --image, not INPUT arguments (got {args.inputs})")
    from .heads import head_class

    head = head_class(pred.spec(args.task).head_kind)
    # every --text is one example over the same image(s): several questions about one scene
    examples = [{"text": text, "images": args.image} if head.views or head.ranks or len(args.image) > 1 else
                {"text": text, "image": args.image[0]} for text in args.text]
    rows = pred.predict(args.task, examples, top_k=args.top_k, batch_size=args.batch_size)
    for text, row in zip(args.text, rows):
        if args.json:
            print(json.dumps({"text": text, "images": args.image, **row}))
            continue
        print(f"{text}\t{' '.join(args.image)}")
        if head.ranks:
            for rank, i in enumerate(row["ranking"][: args.top_k], 1):
                print(f"  {rank}\t{args.image[i]}\t{row['scores'][i]:.3f}")
        elif "region" in row:
            print(f"  region {row['region']}\tbox {row['box']}\t{row['score']:.3f}")
        else:
            alts = ", ".join(f"{k} {v:.3f}" for k, v in row["scores"].items())
            print(f"  {row['label']}\t{row['score']:.3f}\t({alts})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .config import default_config_path, load_config
    from .info import describe

    given = args.config or args.demo or args.vl or args.mix or args.unit or args.cvlp
    cfg = _load_cfg(args) if given else load_config(default_config_path("demo"))
    print(describe(cfg))
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    from .data.sources import build_all_task_data, data_root

    cfg = _load_cfg(args)
    if args.root:
        cfg.data.root = args.root
    t0 = time.perf_counter()
    data, _ = build_all_task_data(cfg, progress=True)
    print(f"[cotrain] {len(data)} tasks ready under {data_root(cfg)} in {time.perf_counter() - t0:.1f}s")
    for name, d in data.items():
        print(f"  {name:16s} {'+'.join(d.inputs):18s} classes={d.num_classes:3d} train={len(d.train)} val={len(d.val)} "
              f"test={len(d.test)}")
    return 0


def cmd_data_clean(args: argparse.Namespace) -> int:
    from .data.clean_split import clean_task_data, format_clean_report
    from .data.sources import build_task_data

    cfg = _load_cfg(args)
    if args.root:
        cfg.data.root = args.root
    built = {t.name: build_task_data(t, cfg, progress=not args.quiet) for t in cfg.tasks if t.source.kind != "text_tsv"}
    data = {n: d for n, d in built.items() if "image_id" in d.train}
    report = clean_task_data(data) if data else None
    if report is None:
        raise InputError(f"config {cfg.name!r} has no task with image ids (vision-and-language or world text tasks) to clean")
    print(f"[cotrain] clean multi-task split of {len(data)} tasks: every train/val row whose image is in any task's test split is removed")
    print(format_clean_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def cmd_data_mine(args: argparse.Namespace) -> int:
    from .api import load
    from .data.mined import write_mined
    from .data.sources import build_all_task_data
    from .train.mining import mine_candidates

    shortlist = None if args.shortlist == "all" else int(args.shortlist)
    if shortlist is not None and shortlist < args.candidates:
        raise InputError(f"--shortlist {shortlist} is shorter than --candidates {args.candidates}: the candidates are "
                         f"picked from each caption's shortlist")
    pred = load(args.checkpoint, device=args.device)
    spec = pred.spec(args.task)
    if spec.head_kind != "retrieval":
        raise InputError(f"task {args.task!r} has a {spec.head_kind} head; mining hard negatives needs a retrieval task "
                         f"({', '.join(n for n, s in pred.specs.items() if s.head_kind == 'retrieval') or 'none here'})")
    cfg = pred.cfg
    if args.data_root:
        cfg.data.root = args.data_root
    # every task of the run: the clean split (data.clean) removes rows by all tasks' test images, and the
    # file must fit the training rows a run of this config gets; each task's data's own candidates, not
    # files the run itself trained from (which may be gone)
    tasks = [t.model_copy(update={"retrieval": t.retrieval.model_copy(update={"mined": None})}) for t in cfg.tasks]
    cfg = cfg.model_copy(update={"tasks": tasks})
    data, _ = build_all_task_data(cfg, vocab_file=pred.checkpoint / "vocab.txt" if pred.tokenizer else None,
                                  progress=not args.quiet)
    step = json.loads((pred.checkpoint / "state.json").read_text()).get("step")
    mined, report = mine_candidates(
        pred.model, args.task, data[args.task].train, candidates=args.candidates, shortlist=shortlist,
        scoring=args.scoring, chunk_size=args.chunk_size, progress=not args.quiet,
        metadata={"checkpoint": str(pred.checkpoint), "step": step})
    run = pred.checkpoint.parent.parent if pred.checkpoint.parent.name == "checkpoints" else pred.checkpoint.parent
    out = Path(args.out) if args.out else run / f"mined-{args.task}.safetensors"
    write_mined(out, mined)
    how = ("pooled-state cosine" if report["scoring"] == "pooled" else
           "full trunk on every pair" if report["shortlist"] is None else
           f"full trunk on each caption's pooled-state top {report['shortlist']}")
    print(f"[cotrain] mined {report['candidates']} hard candidates for each of {report['captions']:,} training captions "
          f"of {args.task} among {report['images']:,} images with {pred.checkpoint} (step {step}); scored by {how}"
          + (f", {report['pairs']:,} pairs at {report['pairs_per_s']:,.0f} pairs/s" if report["pairs"] else "")
          + f", {report['seconds']:.1f} s")
    print(f"  own image above every mined candidate for {100 * report['own_first']:.1f}% of the captions; "
          f"{report['same_caption_excluded']:,} images excluded as positives (a caption with the same words)"
          + (f"; {100 * report['overlap_with_data']:.1f}% of the mined candidates are among the data's own"
             if report["overlap_with_data"] is not None else ""))
    print(f"[cotrain] wrote {out}; train with it: tasks.{args.task}.retrieval.mined={out}")
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "out": str(out), "checkpoint": str(pred.checkpoint),
                                               "step": step}, indent=1))
    return 0


# ---------------------------------------------------------------------------------------- parser
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shortlist(text: str) -> str:
    return text if text == "all" else str(_positive(text))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cotrain",
        description="Co-train one transformer on many tasks across image, video, audio and text.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a config", description="Train one model on every task of CONFIG "
                       "(or the embedded demo). Writes checkpoints, log.jsonl, TensorBoard logs and results.json to run.out_dir, "
                       "then prints the per-task test table.")
    _add_config_args(t)
    t.add_argument("--out", help="run folder (overrides run.out_dir)")
    t.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="continue exactly from a checkpoint (default: run.out_dir's latest; if that one is unreadable, "
                   "the newest readable one, with a warning)")
    t.add_argument("--allow-inexact-resume", action="store_true",
                   help="with --resume: also resume from a checkpoint without optimizer.safetensors (or RNG state), "
                   "which is refused otherwise; the optimizer moments and RNG state then start afresh, so the run "
                   "will not match an uninterrupted one (a warning and a log.jsonl event say so)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    pt = sub.add_parser("pretrain", help="pretrain a model (masked modelling, matching, CVLP's contrastive loss)",
                        description="Pretrain on the caption tasks of CONFIG (or the embedded --cvlp recipe): the same "
                        "loop as train, for a config whose tasks use a `pretrain` head (masked language modelling, "
                        "image-text matching, masked region modelling, CVLP's visual contrastive loss with a momentum key "
                        "network, a queue of negatives and layer drop). Logs the contrastive statistics; then fine-tune "
                        "with `cotrain finetune RUN --config DOWNSTREAM.yaml`.")
    _add_config_args(pt)
    pt.add_argument("--out", help="run folder (overrides run.out_dir)")
    pt.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                    help="continue exactly (the queue, its pointer and the key network included)")
    pt.add_argument("--allow-inexact-resume", action="store_true", help="as for train")
    pt.add_argument("--quiet", action="store_true", help="no progress bar")
    pt.set_defaults(func=cmd_pretrain)

    e = sub.add_parser("eval", help="evaluate a checkpoint", description="Evaluate a checkpoint on its tasks' val or test split "
                       "(the data is re-generated from, or read from, the checkpoint's config).")
    e.add_argument("checkpoint", help="checkpoint folder, or a run folder (its latest checkpoint)")
    e.add_argument("--split", default="test", choices=["val", "test"])
    e.add_argument("--tasks", help="comma-separated subset of tasks")
    e.add_argument("--data-root", help="where generated data is cached")
    e.add_argument("--json", help="also write the results to this JSON file")
    e.set_defaults(func=cmd_eval)

    ft = sub.add_parser("finetune", help="fine-tune from a checkpoint: one task of a multi-task run, or a downstream "
                        "config from a pretraining run", description="Two kinds of fine-tuning. --task TASK: 12-in-1's "
                        "all-task -> single-task fine-tuning: a one-task run of TASK from a multi-task checkpoint (encoders, "
                        "trunk, the task's head and task token carry over; optimizer and schedule start afresh). --config "
                        "DOWNSTREAM.yaml: pretrained -> downstream (CVLP, ViLBERT): train DOWNSTREAM's tasks starting from the "
                        "checkpoint's encoders and trunk, with new heads and task tokens; the pretraining heads, key network "
                        "and queue are dropped; a report lists what was loaded, what is new and what was ignored; a trunk "
                        "that does not match is refused, naming the parameters. Either way the test scores are printed. "
                        "Overrides apply to the fine-tuning config, e.g. optim.lr=1e-4.")
    ft.add_argument("checkpoint", help="checkpoint folder, or a run folder (its latest checkpoint)")
    ft.add_argument("--task", help="multi-task -> single-task: the task to fine-tune")
    ft.add_argument("--config", help="pretrained -> downstream: the downstream experiment YAML (or an embedded "
                    "config's name, e.g. cvlp-downstream)")
    ft.add_argument("--quiet", action="store_true", help="no progress bar (--config)")
    ft.add_argument("--steps", type=int, help="fine-tuning steps (default: the task's share of the multi-task run)")
    ft.add_argument("--out", help="run folder (default: <run>-ft-<task>)")
    ft.add_argument("--data-root", help="where generated data is cached")
    ft.add_argument("overrides", nargs="*", metavar="key.sub=value")
    ft.set_defaults(func=cmd_finetune)

    pr = sub.add_parser("probe", help="linear probe of the frozen trunk", description="PolyViT's linear-probe evaluation: freeze "
                        "the encoders and trunk, train only a new linear head on TASK's training split, report val/test accuracy. "
                        "TASK is one of the checkpoint's tasks or any world task (e.g. a held-out one) whose inputs the model encodes.")
    pr.add_argument("checkpoint")
    pr.add_argument("--task", required=True)
    pr.add_argument("--epochs", type=int, default=100, help="epochs of full-batch training of the linear head")
    pr.add_argument("--n-train", type=int, default=None, help="training examples for a world task (default: its config)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--data-root", help="where generated data is cached")
    pr.set_defaults(func=cmd_probe)

    pd = sub.add_parser("predict", help="predict with a checkpoint", description="Predict TASK for each INPUT: image, audio "
                        "(wav/flac) or video (mp4) files, or sentences for text tasks. Prints input, label, probability, alternatives. "
                        "Vision-and-language tasks take --text and --image: answer a question (vqa), rank images for a caption "
                        "(retrieval), point at the referred region (refexp), verify a statement (nlvr, snli-ve). Detection tasks print each "
                        "object's label, attribute, score and box in pixels of the original picture; --draw writes the picture "
                        "with them drawn.")
    pd.add_argument("checkpoint")
    pd.add_argument("--task", required=True)
    pd.add_argument("inputs", nargs="*", metavar="INPUT")
    pd.add_argument("--text", action="append", help="vision-and-language tasks: the question / caption / expression / "
                    "statement; repeat it to ask several about the same image(s) (one result each)")
    pd.add_argument("--image", action="append", metavar="FILE", help="vision-and-language tasks: a region file (.npz) or "
                    "picture; repeat for nlvr (left, right) and for retrieval (the images to rank)")
    pd.add_argument("--top-k", type=int, default=3)
    pd.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (default 64)")
    pd.add_argument("--json", action="store_true", help="one JSON object per line")
    pd.add_argument("--glue-tsv", metavar="FILE", help="text tasks trained on GLUE: predict every row of a GLUE TSV "
                    "(a test file without labels, e.g. test_matched.tsv, or its task folder)")
    pd.add_argument("--draw", metavar="OUT.png", help="detection tasks: write the picture with its boxes and labels "
                    "drawn (several inputs: OUT-0.png, OUT-1.png, ...)")
    pd.set_defaults(func=cmd_predict)

    i = sub.add_parser("info", help="model sizes, tasks and environment", description="Describe a config (default: the demo): "
                       "its tasks, the parameter counts of its model with L_adapt = 0 and L/2, and the environment.")
    _add_config_args(i)
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("data", help="data commands", description="Data commands.")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    g = dsub.add_parser("generate", help="generate and cache the world data of a config",
                        description="Generate (once per seed) and cache every world task of CONFIG; read and check its folder tasks.")
    _add_config_args(g)
    g.add_argument("--root", help="cache folder (default: data.root, $COTRAIN_DATA or ~/.cache/cotrain)")
    g.set_defaults(func=cmd_data_generate)
    c = dsub.add_parser("clean", help="the clean multi-task split and what each task loses",
                        description="12-in-1's clean split: remove from every task's train and val split each row whose "
                        "image appears in any task's test split, and print the table of what each task lost (rows and "
                        "images before / after, % removed, and the test-image overlap between tasks). Training applies the "
                        "same removal when the config sets data.clean: true.")
    _add_config_args(c)
    c.add_argument("--root", help="cache folder (default: data.root, $COTRAIN_DATA or ~/.cache/cotrain)")
    c.add_argument("--json", help="also write the report to this JSON file")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_data_clean)
    m = dsub.add_parser("mine", help="mine a retrieval task's hard negatives with a trained model",
                        description="12-in-1's offline hard-negative mining: score every training caption of TASK "
                        "against the training images with CHECKPOINT's model and keep, per caption, the CANDIDATES "
                        "images it scores highest that are not the caption's own (nor an image with a caption of the "
                        "very same words). First the cosine of the pooled single-stream states shortlists images, then "
                        "the full co-attention trunk and retrieval head re-score the shortlist (--scoring pooled: the "
                        "first stage alone; --shortlist all: the full trunk on every pair). Writes a safetensors file; "
                        "a later run draws its hard negatives from it with tasks.TASK.retrieval.mined=FILE. The file "
                        "fits the checkpoint's training data only (same task, n_train, seed and clean split).")
    m.add_argument("checkpoint", help="checkpoint folder, or a run folder (its latest checkpoint)")
    m.add_argument("--task", required=True, help="the retrieval task (e.g. coco-ir)")
    m.add_argument("--out", help="the file to write (default: mined-TASK.safetensors in the run folder)")
    m.add_argument("--candidates", type=_positive, default=12, help="hard candidates kept per caption (default 12)")
    m.add_argument("--shortlist", default="64", type=_shortlist, help="images per caption the first stage passes to "
                   "the full trunk (default 64; `all`: every pair, slow on big pools)")
    m.add_argument("--scoring", choices=["joint", "pooled"], default="joint", help="joint (default): full-trunk scores "
                   "of the shortlist; pooled: the pooled-state cosine alone")
    m.add_argument("--chunk-size", type=_positive, default=2048, help="pairs per trunk pass (default 2048)")
    m.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    m.add_argument("--data-root", help="where generated data is cached")
    m.add_argument("--json", help="also write the report to this JSON file")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=cmd_data_mine)
    d.set_defaults(func=lambda a: (d.print_help(), 2)[1])
    return p


def _one_line_warnings(command: str, show):
    """cotrain's own warnings (e.g. a checkpoint fall-back, an inexact resume) as one stderr line each."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("cotrain."):
            print(f"cotrain {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    set_openmp_defaults()  # before torch is imported: idle OpenMP threads sleep (see train/threads.py)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # predict's INPUTs may come after its options (`predict ckpt --task t a.png b.png`)
    if hasattr(args, "inputs") and extra:
        args.inputs = list(args.inputs) + [a for a in extra if not a.startswith("-")]
        extra = [a for a in extra if a.startswith("-")]
    # overrides may come after options (`train cfg.yaml --quiet run.steps=30`)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .errors import CotrainError

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except CotrainError as err:  # the project's own errors (config, data, checkpoint, input, diverged): one line
        if os.environ.get("COTRAIN_DEBUG"):
            raise
        print(f"cotrain {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``cotrain`` console script: :func:`main`, then exit; a ``torchrun`` worker leaves through
    :func:`cotrain.train.distributed.exit_distributed` (process group torn down on every rank)."""
    code = main()
    if "torch" in sys.modules:
        from .train.distributed import exit_distributed, under_torchrun

        if under_torchrun():
            exit_distributed(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
