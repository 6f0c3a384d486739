"""The config schema: YAML in, errors that name the key and the file."""

import pytest
import yaml

from cotrain.config import ConfigError, apply_override, default_config_path, load_config


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


BASE = {"tasks": [{"name": "shapes", "source": {"kind": "world", "name": "shapes"}}]}


def test_embedded_demo_config_is_valid():
    cfg = load_config(default_config_path("demo"))
    assert len(cfg.tasks) >= 6
    assert cfg.task("sounds").source.name == "sounds"


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = write(tmp_path, {**BASE, "modle": {"dim": 64}})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "modle: unknown key" in str(e.value) and str(path) in str(e.value)


def test_unknown_nested_key_names_task(tmp_path):
    raw = {"tasks": [{"name": "count", "batchsize": 3, "source": {"kind": "world", "name": "count"}}]}
    with pytest.raises(ConfigError, match=r"tasks\[count\]\.batchsize: unknown key"):
        load_config(write(tmp_path, raw))


def test_wrong_type_names_key(tmp_path):
    raw = {**BASE, "model": {"depth": "deep"}}
    with pytest.raises(ConfigError, match=r"model\.depth: .*integer"):
        load_config(write(tmp_path, raw))


def test_semantic_checks(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        load_config(write(tmp_path, {**BASE, "model": {"dim": 30, "num_heads": 4}}))
    with pytest.raises(ConfigError, match="l_adapt"):
        load_config(write(tmp_path, {**BASE, "model": {"depth": 2, "l_adapt": 3}}))
    dup = {"tasks": BASE["tasks"] * 2}
    with pytest.raises(ConfigError, match="repeated"):
        load_config(write(tmp_path, dup))
    nopath = {"tasks": [{"name": "x", "source": {"kind": "image_folder"}}]}
    with pytest.raises(ConfigError, match="needs `path`"):
        load_config(write(tmp_path, nopath))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_overrides_by_path_task_name_and_index(tmp_path):
    path = write(tmp_path, BASE)
    cfg = load_config(path, ["run.steps=7", "model.encoders.image.patch_size=4", "tasks.shapes.batch_size=5", "tasks.0.lr_mult=2.5"])
    assert cfg.run.steps == 7
    assert cfg.model.encoders.image.patch_size == 4
    assert cfg.tasks[0].batch_size == 5 and cfg.tasks[0].lr_mult == 2.5


def test_bad_overrides(tmp_path):
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError, match="run.stepz: unknown key"):
        load_config(path, ["run.stepz=3"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(path, ["run.steps"])
    with pytest.raises(ConfigError, match="no list entry"):
        apply_override(dict(BASE), "tasks.nosuch.batch_size=3")


def test_task_head_must_be_declared_and_declared_heads_used(tmp_path):
    raw = {"tasks": [{"name": "a", "head": "sharedd", "source": {"kind": "world", "name": "shapes"}}],
           "model": {"heads": {"shared": {}}}}
    with pytest.raises(ConfigError, match="uses head 'sharedd', which model.heads does not declare"):
        load_config(write(tmp_path, raw))
    raw = {**BASE, "model": {"heads": {"nobody": {}}}}
    with pytest.raises(ConfigError, match=r"declares \['nobody'\], which no task uses"):
        load_config(write(tmp_path, raw))
    ok = {"tasks": [{"name": n, "head": "s", "source": {"kind": "world", "name": "digits"}} for n in ("a", "b")],
          "model": {"heads": {"s": {"mlp": True}}}}
    cfg = load_config(write(tmp_path, ok))
    assert {t.head_key for t in cfg.tasks} == {"s"}


def test_task_modality_must_exist(tmp_path):
    raw = {"tasks": [{"name": "a", "modality": "smell", "source": {"kind": "world", "name": "shapes"}}]}
    with pytest.raises(ConfigError, match=r"tasks\[a\]\.modality"):
        load_config(write(tmp_path, raw))
