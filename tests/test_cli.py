"""The command line, end to end on small real-format folders (PNG images, WAV audio)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from PIL import Image

from cotrain.cli import main
from cotrain.errors import InputError


def make_image_folder(root: Path, n: int = 24) -> Path:
    """Two classes: dark and bright images."""
    rng = np.random.default_rng(0)
    for cls, level in (("dark", 50), ("bright", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = np.clip(level + rng.normal(0, 15, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def make_audio_folder(root: Path, n: int = 24) -> Path:
    """Two classes: low and high tones."""
    rng = np.random.default_rng(1)
    t = np.arange(4000) / 8000
    for cls, freq in (("low", 300.0), ("high", 1500.0)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            wav = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.05 * rng.standard_normal()) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(root / cls / f"{i}.wav", wav.astype(np.float32), 8000)
    return root


def write_cfg(tmp_path: Path, **run) -> Path:
    raw = {
        "name": "cli",
        "tasks": [
            {"name": "bright", "source": {"kind": "image_folder", "path": str(make_image_folder(tmp_path / "img")), "val_fraction": 0.2, "test_fraction": 0.2}, "batch_size": 8},
            {"name": "tone", "source": {"kind": "audio_folder", "path": str(make_audio_folder(tmp_path / "aud")), "val_fraction": 0.2, "test_fraction": 0.2}, "batch_size": 8},
        ],
        "model": {"dim": 32, "depth": 2, "num_heads": 2,
                  "encoders": {"image": {"image_size": 16, "patch_size": 8},
                               "audio": {"sample_rate": 8000, "seconds": 0.5, "n_fft": 128, "hop_length": 64, "n_mels": 32, "patch": [16, 16]}}},
        "schedule": {"kind": "alternating"},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "run": {"steps": 40, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 20, "checkpoint_every": 20, **run},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cfg = write_cfg(tmp)
    assert main(["train", str(cfg), "--quiet"]) == 0
    return tmp


def test_train_prints_table_and_beats_chance(trained, capsys):
    results = json.loads((trained / "run" / "results.json").read_text())
    assert set(results) == {"bright", "tone"}
    for r in results.values():
        assert r["value"] >= 0.9 and r["chance"] <= 0.6


def test_eval_predict_api_agree(trained, capsys):
    assert main(["eval", str(trained / "run"), "--json", str(trained / "eval.json")]) == 0
    out = capsys.readouterr().out
    assert "| bright | image | top1 |" in out
    ev = json.loads((trained / "eval.json").read_text())
    assert ev["bright"]["value"] == pytest.approx(json.loads((trained / "run" / "results.json").read_text())["bright"]["value"])

    dark = sorted((trained / "img" / "dark").glob("*.png"))[:2]
    high = sorted((trained / "aud" / "high").glob("*.wav"))[:1]
    assert main(["predict", str(trained / "run"), "--task", "bright", *map(str, dark), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["dark", "dark"]
    assert main(["predict", str(trained / "run"), "--task", "tone", str(high[0])]) == 0
    assert "\thigh\t" in capsys.readouterr().out

    import cotrain

    model = cotrain.load(trained / "run")
    assert model.tasks == ["bright", "tone"]
    assert model.predict("bright", dark[0])[0]["label"] == "dark"
    arr = np.full((3, 16, 16), 220, np.uint8)  # an array in the batch layout, one example
    assert model.predict("bright", arr)[0]["label"] == "bright"
    with pytest.raises(InputError, match="this model knows"):
        model.predict("nope", arr)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model.predict("bright", np.zeros((2, 2), np.uint8))


def test_probe_on_own_task(trained, capsys):
    assert main(["probe", str(trained / "run"), "--task", "tone", "--epochs", "50"]) == 0
    out = capsys.readouterr().out
    test_acc = float(out.split("test ")[1].split()[0])
    assert test_acc >= 0.8


def test_resume_flag_continues(tmp_path, capsys):
    cfg = write_cfg(tmp_path, steps=20)
    assert main(["train", str(cfg), "--quiet"]) == 0
    assert main(["train", str(cfg), "--quiet", "run.steps=30", "--resume"]) == 0
    assert "starting at step 20" in capsys.readouterr().out


def test_info_reports_both_l_adapt(trained, capsys):
    assert main(["info", str(trained / "exp.yaml"), "model.depth=4"]) == 0
    out = capsys.readouterr().out
    lines = [l.split() for l in out.splitlines()]
    lines = [l for l in lines if len(l) == 7 and all(x.replace(",", "").isdigit() for x in l)]
    assert [l[0] for l in lines] == ["0", "2"]
    total0, total2 = (int(l[-1].replace(",", "")) for l in lines)
    assert total2 > total0  # adapter layers are per modality
    assert "bright" in out and "image_folder" in out


@pytest.mark.parametrize(
    "override, message",
    [
        ("tasks.bright.source.path=/does/not/exist", "/does/not/exist"),
        ("model.dpth=3", "model.dpth: unknown key"),
        ("tasks.tone.batch_size=many", r"tasks\[tone\].batch_size"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, override, message):
    cfg = write_cfg(tmp_path)
    assert main(["train", str(cfg), override, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cotrain train: error:")
    import re

    assert re.search(message, err), err
    assert "Traceback" not in err


def test_empty_class_folder_and_corrupt_file_named(tmp_path, capsys):
    cfg = write_cfg(tmp_path)
    (tmp_path / "img" / "empty").mkdir()
    assert main(["train", str(cfg), "--quiet"]) == 1
    assert "empty" in capsys.readouterr().err
    (tmp_path / "img" / "empty").rmdir()
    (tmp_path / "aud" / "low" / "3.wav").write_bytes(b"not a wav file")
    assert main(["train", str(cfg), "--quiet"]) == 1
    assert "3.wav" in capsys.readouterr().err


def test_help_texts_explain():
    out = subprocess.run([sys.executable, "-m", "cotrain.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in ("train", "eval", "probe", "predict", "info", "data"):
        assert cmd in out
    out = subprocess.run([sys.executable, "-m", "cotrain.cli", "probe", "--help"], capture_output=True, text=True).stdout
    assert "linear head" in out and "--task" in out


def test_info_describes_a_text_task(tmp_path, capsys):
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("".join(f"good movie {i}\tpos\nbad film {i}\tneg\nokay show {i}\tmeh\n" for i in range(10)))
    cfg = tmp_path / "text.yaml"
    cfg.write_text(yaml.safe_dump({"tasks": [{"name": "reviews", "source": {"kind": "text_tsv", "path": str(tsv)}}],
                                   "model": {"encoders": {"text": {"vocab_size": 500}}}}))
    assert main(["info", str(cfg)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("reviews"))
    assert row.split()[1:5] == ["text", "reviews", "(classify)", "3"]
    assert "up to 500 word pieces" in out and "single-task models" in out


def test_info_says_a_real_vqa_vocabulary_comes_from_the_data(tmp_path, capsys):
    cfg = tmp_path / "vqa.yaml"
    cfg.write_text(yaml.safe_dump({
        "tasks": [{"name": "vqa", "head": "vqa", "source": {
            "kind": "vqa_v2", "regions": "feats", "files": {"train": {"questions": "q.json", "annotations": "a.json"}}}}],
        "model": {"trunk": "coattention", "heads": {"vqa": {"type": "vqa"}}}}))
    assert main(["info", str(cfg)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("vqa "))
    assert row.split()[3] == "data" and "3129" not in out
    assert "built from the annotations" in out


def test_cli_sets_the_openmp_wait_policy_before_torch_loads(tmp_path):
    """libgomp reads OMP_WAIT_POLICY once, when torch is imported: `cotrain` must set it first
    (a spy records whether torch was already imported when it did)."""
    code = (
        "import os, sys\n"
        "from cotrain import cli\n"
        "real, seen = cli.set_openmp_defaults, []\n"
        "cli.set_openmp_defaults = lambda: seen.append('torch' in sys.modules) or real()\n"
        "rc = cli.main(['info'])\n"
        "print(rc, seen, os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
    )
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "0 [False] PASSIVE True"


def _write(path, how):
    if how == "text":
        path.write_text("hello")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wav":
        sf.write(path, np.zeros(800, np.float32), 8000)
    elif how == "mp4-bytes":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    elif how == "jpg":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "task, name, how, message",
    [
        ("bright", "notes.txt", "text", "task 'bright' reads image files"),
        ("bright", "empty.png", "empty", "empty file"),
        ("bright", "tone.wav", "wav", "is an audio file"),
        ("bright", "clip.mp4", "mp4-bytes", "is a video file"),
        ("tone", "pic.jpg", "jpg", "is an image file"),
        ("tone", "absent.wav", None, "input file not found"),
    ],
)
def test_predict_names_an_unreadable_input_and_the_expected_kind(trained, tmp_path, capsys, task, name, how, message):
    path = _write(tmp_path / name, how)
    assert main(["predict", str(trained / "run"), "--task", task, str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cotrain predict: error:") and "Traceback" not in err
    assert str(path) in err and message in err


def test_predict_plain_output_echoes_each_input(trained, capsys):
    dark = sorted((trained / "img" / "dark").glob("*.png"))[:3]
    assert main(["predict", str(trained / "run"), "--task", "bright", *map(str, dark), "--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in dark]


def test_the_cli_prints_its_own_errors_as_one_line_and_lets_bugs_raise(monkeypatch, capsys):
    import cotrain.cli as cli
    from cotrain.config import ConfigError

    def config_problem(args):
        raise ConfigError("tasks[a].batch_size: unknown key")

    def bug(args):
        return {}["a key that is not there"]  # a KeyError from a real bug must keep its traceback

    monkeypatch.setattr(cli, "cmd_info", config_problem)
    assert main(["info"]) == 1
    assert capsys.readouterr().err.strip() == "cotrain info: error: tasks[a].batch_size: unknown key"
    monkeypatch.setattr(cli, "cmd_info", bug)
    with pytest.raises(KeyError, match="a key that is not there"):
        main(["info"])
    monkeypatch.setattr(cli, "cmd_info", lambda args: int("x"))  # a ValueError from a bug, likewise
    with pytest.raises(ValueError, match="invalid literal"):
        main(["info"])


def test_predict_from_python_runs_a_list_in_batches(trained, monkeypatch):
    import cotrain

    model = cotrain.load(trained / "run")
    files = sorted((trained / "img" / "dark").glob("*.png"))[:5] + sorted((trained / "img" / "bright").glob("*.png"))[:5]
    one_by_one = [model.predict("bright", f)[0] for f in files]
    sizes = []
    forward = model.model.forward
    monkeypatch.setattr(model.model, "forward", lambda batch, task: sizes.append(len(batch["image"])) or forward(batch, task))
    batched = model.predict("bright", files, batch_size=4)
    assert sizes == [4, 4, 2]
    assert [r["label"] for r in batched] == [r["label"] for r in one_by_one]
    for a, b in zip(batched, one_by_one):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
