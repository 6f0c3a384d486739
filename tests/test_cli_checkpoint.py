"""The command line on damaged checkpoints: exit code 1 and one line on stderr naming the file, no
traceback; ``--allow-inexact-resume`` for a checkpoint without optimizer state."""

from __future__ import annotations

import shutil

import pytest
import yaml

from cotrain.cli import main
from cotrain.train.checkpoint_state import STATE_VERSION
from cotrain.train.logging import read_log
from test_cli import write_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-ckpt")
    cfg = write_cfg(tmp, steps=4, checkpoint_every=4, eval_every=1000)
    assert main(["train", str(cfg), "--quiet"]) == 0
    return tmp


def run_copy(trained, tmp_path):
    """A private copy of the trained run; returns ``(run_folder, checkpoint_folder)``."""
    run = shutil.copytree(trained / "run", tmp_path / "run")
    return run, run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def one_error_line(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"cotrain {command}: error: "), err
    return lines[0]


def test_train_resume_from_truncated_weights(trained, tmp_path, capsys):
    run, ckpt = run_copy(trained, tmp_path)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert main(["train", str(trained / "exp.yaml"), f"run.out_dir={run}", "--quiet", "--resume"]) == 1
    line = one_error_line(capsys, "train")
    assert f"{ckpt / 'model.safetensors'}: truncated" in line


def test_eval_of_a_state_json_list(trained, tmp_path, capsys):
    run, ckpt = run_copy(trained, tmp_path)
    (ckpt / "state.json").write_text("[]")
    assert main(["eval", str(run)]) == 1
    line = one_error_line(capsys, "eval")
    assert f"{ckpt / 'state.json'}: expected a JSON object" in line


def test_eval_of_a_newer_state_version(trained, tmp_path, capsys):
    run, ckpt = run_copy(trained, tmp_path)
    text = (ckpt / "state.json").read_text()
    (ckpt / "state.json").write_text(text.replace(f'"version": {STATE_VERSION}', '"version": 7', 1))
    assert main(["eval", str(run)]) == 1
    line = one_error_line(capsys, "eval")
    assert f"{ckpt / 'state.json'}: checkpoint state version 7, but this cotrain reads version {STATE_VERSION}" in line


def test_missing_optimizer_state_needs_allow_inexact_resume(trained, tmp_path, capsys):
    run, ckpt = run_copy(trained, tmp_path)
    (ckpt / "optimizer.safetensors").unlink()
    train = ["train", str(trained / "exp.yaml"), f"run.out_dir={run}", "--quiet", "run.steps=6", "--resume"]
    assert main(train) == 1
    line = one_error_line(capsys, "train")
    assert f"{ckpt / 'optimizer.safetensors'}: missing" in line and "--allow-inexact-resume" in line

    assert main(["eval", str(run)]) == 0  # eval needs only the weights
    capsys.readouterr()

    assert main([*train, "--allow-inexact-resume"]) == 0
    captured = capsys.readouterr()
    assert "INEXACT resume" in captured.err and "starting at step 4" in captured.out
    assert [r["step"] for r in read_log(run) if r.get("message") == "inexact resume"] == [4]


def test_allow_inexact_resume_without_resume_is_an_error(trained, capsys):
    assert main(["train", str(trained / "exp.yaml"), "--quiet", "--allow-inexact-resume"]) == 1
    assert "--allow-inexact-resume only applies with --resume" in one_error_line(capsys, "train")


def test_resume_with_other_tasks_is_one_error_line(trained, tmp_path, capsys):
    run, _ = run_copy(trained, tmp_path)
    raw = yaml.safe_load((trained / "exp.yaml").read_text())
    raw["tasks"] = raw["tasks"][:1]
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", str(tmp_path / "one.yaml"), f"run.out_dir={run}", "--quiet", "--resume"]) == 1
    line = one_error_line(capsys, "train")
    assert "checkpoint tasks ['bright', 'tone'] differ from the config's ['bright']" in line
