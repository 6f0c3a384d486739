"""Fast checks of benchmarks/common.py (and the E4 / E5 config builders): no training."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest

from cotrain.config import config_from_dict

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    """Import benchmarks/NAME.py (once) under its own name, as the scripts import `common`."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


common = _load("common")


# ------------------------------------------------------------------------------------ write_section
def test_write_section_creates_file_and_section(tmp_path):
    out = tmp_path / "docs" / "results.md"
    common.write_section(out, "E4", "| a |\n| --- |\n| 1 |\n")
    text = out.read_text()
    assert text.startswith("# Results")
    assert "<!-- E4:start -->\n| a |\n| --- |\n| 1 |\n<!-- E4:end -->" in text


def test_write_section_replaces_only_its_section(tmp_path):
    out = tmp_path / "results.md"
    out.write_text(
        "# My results\n\nintro kept\n\n<!-- E4:start -->\nold E4\n<!-- E4:end -->\n\nmiddle kept\n\n"
        "<!-- E5:start -->\nold E5\n<!-- E5:end -->\ntail kept\n"
    )
    common.write_section(out, "E4", "new E4 $1 \\1 text")  # regex specials must come through verbatim
    text = out.read_text()
    assert "new E4 $1 \\1 text" in text and "old E4" not in text
    assert "<!-- E5:start -->\nold E5\n<!-- E5:end -->" in text
    for kept in ("# My results", "intro kept", "middle kept", "tail kept"):
        assert kept in text
    assert text.index("new E4") < text.index("middle kept") < text.index("old E5")


def test_write_section_appends_missing_section(tmp_path):
    out = tmp_path / "results.md"
    common.write_section(out, "E4", "four")
    common.write_section(out, "E5", "five")
    text = out.read_text()
    assert text.index("<!-- E4:start -->") < text.index("<!-- E4:end -->") < text.index("<!-- E5:start -->")
    assert text.count("<!-- E4:start -->") == 1 and text.count("<!-- E5:start -->") == 1


def test_write_section_is_idempotent(tmp_path):
    out = tmp_path / "results.md"
    common.write_section(out, "E5", "five")
    common.write_section(out, "E4", "table\n\nmore\n")
    once = out.read_text()
    common.write_section(out, "E4", "table\n\nmore\n")
    common.write_section(out, "E5", "five")
    assert out.read_text() == once
    assert not [p for p in tmp_path.iterdir() if p.name != "results.md"]  # no temporary files left


def test_write_section_rejects_odd_names(tmp_path):
    with pytest.raises(ValueError):
        common.write_section(tmp_path / "r.md", "E4 -->", "x")


# ------------------------------------------------------------------------------------ configs
def test_small_config_is_valid_and_matches_demo():
    raw = common.base_config("small")
    cfg = config_from_dict(raw)
    assert [t.name for t in cfg.tasks] == common.DEMO_TASKS
    assert (cfg.model.dim, cfg.model.depth, cfg.model.num_heads) == (128, 4, 4)
    assert cfg.model.encoders.image.image_size == 32 and cfg.model.encoders.video.frames == 4
    assert cfg.model.encoders.audio.sample_rate == 8000 and cfg.model.encoders.audio.seconds == 1.0
    assert cfg.data.root is None  # the default cache, shared with `make demo`
    assert cfg.run.steps == common.PRESETS["small"].per_task_steps * 7
    assert cfg.run.progress is False and cfg.run.tensorboard is False
    assert cfg.run.device == "cpu" and cfg.run.threads == 1
    assert cfg.run.eval_every == cfg.run.steps  # no validation passes during training


def test_full_config_is_valid():
    cfg = config_from_dict(common.base_config("full", device="cpu"))
    assert (cfg.model.dim, cfg.model.depth) == (384, 8)
    assert cfg.run.steps > common.base_config("small")["run"]["steps"]


@pytest.mark.parametrize("scale", [0.02, 0.5, 1.0, 2.0])
def test_steps_scale_is_applied(scale):
    base = common.PRESETS["small"].per_task_steps
    raw = common.base_config("small", tasks=["shapes", "sounds"], steps_scale=scale)
    cfg = config_from_dict(raw)
    assert cfg.run.steps == max(1, round(base * 2 * scale))
    assert cfg.optim.warmup_steps == max(1, round(0.05 * cfg.run.steps))
    assert common.per_task_steps("small", scale) == max(1, round(base * scale))
    assert config_from_dict(common.base_config("small", steps=10, steps_scale=0.001)).run.steps == 1


def test_set_steps_keeps_the_rest():
    raw = common.base_config("small", tasks=["shapes"])
    new = common.set_steps(raw, 40)
    assert new["run"]["steps"] == 40 and new["optim"]["warmup_steps"] == 2
    assert raw["run"]["steps"] != 40  # a copy
    config_from_dict(new)


def test_e4_schedules_have_equal_compute(tmp_path):
    e4 = _load("e4_schedules")
    args = argparse.Namespace(preset="small", steps_scale=0.1, seed=0, device=None, runs_dir=str(tmp_path),
                              threads=1, weighting="classes")
    tasks = common.DEMO_TASKS
    raws = e4.schedule_configs(args, tasks, seed=2)
    s = common.per_task_steps("small", 0.1)
    for raw in raws:
        cfg = config_from_dict(raw)
        batches_per_step = len(tasks) if cfg.schedule.kind == "accumulate" else 1
        assert cfg.run.steps * batches_per_step == s * len(tasks)
    weighted = config_from_dict(raws[e4.SCHEDULES.index("weighted")])
    assert weighted.schedule.weighting == "explicit"
    assert weighted.task("digits").weight > weighted.task("shapes").weight
    assert [Path(r["run"]["out_dir"]).name for r in raws] == e4.SCHEDULES
    assert {Path(r["run"]["out_dir"]).parent.name for r in raws} == {"seed2"}
    assert {(r["run"]["seed"], r["data"]["seed"]) for r in raws} == {(2, 2)}  # a seed is its own data too


def test_mean_std_and_the_noise_rule():
    assert common.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert common.mean_std([5.0]) == (5.0, 0.0)
    assert common.fmt_ms([0.5, 0.7]) == "0.600 ± 0.141"
    assert common.beyond_noise([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])  # 1.0 ± 0.1 vs 2.0 ± 0.1
    assert not common.beyond_noise([1.0, 1.4, 0.6], [1.5, 1.6, 1.4])  # 1.0 ± 0.4 reaches 1.4 + ... overlap


def test_e5_jobs(tmp_path):
    e5 = _load("e5_cotrain_vs_single")
    args = argparse.Namespace(preset="small", steps_scale=0.1, seed=0, device=None, runs_dir=str(tmp_path), threads=1)
    tasks = common.DEMO_TASKS
    names, jobs = e5.build_jobs(args, tasks, e5.HELD_OUT)
    s = common.per_task_steps("small", 0.1)
    by_name = dict(zip(names, jobs))
    assert len(names) == len(tasks) + 4
    assert by_name["cotrain-L2"][1][0]["model"]["l_adapt"] == 2
    assert by_name["cotrain-L0"][1][0]["run"]["steps"] == s * len(tasks)
    assert sum(by_name[f"single-{t}"][1][0]["run"]["steps"] for t in tasks) == s * len(tasks)
    assert {r["name"] for r in by_name["cotrain4-L0"][2]["probe_tasks"]} == set(e5.HELD_OUT)
    assert by_name["random-init"][2]["train"] is False


def test_header_names_command_machine_and_date():
    line = common.header("cpu", 2, argv=[str(BENCH / "e4_schedules.py"), "--steps-scale", "0.5"],
                         when=dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.timezone.utc))
    assert "`python benchmarks/e4_schedules.py --steps-scale 0.5`" in line
    assert "cores" in line and "torch" in line and "device: cpu" in line
    assert "2025-01-02 03:04 UTC" in line


def test_spoken_digits_dropped_without_espeak(monkeypatch):
    import cotrain.data.world as world

    monkeypatch.setattr(world, "espeak_available", lambda: False)
    kept, dropped = common.available_tasks(common.DEMO_TASKS)
    assert dropped == ["spoken-digits"] and kept == [t for t in common.DEMO_TASKS if t != "spoken-digits"]
    assert "espeak-ng" in common.espeak_note(dropped) and common.espeak_note([]) == ""
    monkeypatch.setattr(world, "espeak_available", lambda: True)
    assert common.available_tasks(common.DEMO_TASKS) == (common.DEMO_TASKS, [])


def test_bold_best_marks_ties():
    assert common.bold_best([0.5, 0.7, 0.7, None]) == ["0.500", "**0.700**", "**0.700**", "–"]
