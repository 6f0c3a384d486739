"""The config schema: YAML in, errors that name the key and the file."""

import pytest
import yaml

from cotrain.config import ConfigError, apply_override, config_from_dict, default_config_path, load_config


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
    with pytest.raises(ConfigError, match="tasks is a list of 1 entry"):
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


def test_task_inputs_must_be_known_kinds(tmp_path):
    raw = {"tasks": [{"name": "a", "inputs": ["smell"], "source": {"kind": "world", "name": "shapes"}}]}
    with pytest.raises(ConfigError, match=r"tasks\[a\]\.inputs\[0\]: Input should be .image.*got .smell."):
        load_config(write(tmp_path, raw))


# ----------------------------------------------------------------- unknown / missing keys name the fix
def error_lines(tmp_path, raw, overrides=()):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, raw), list(overrides))
    return str(e.value).splitlines()[1:]


def test_unknown_key_suggests_the_nearest_names_of_its_section(tmp_path):
    raw = {"tasks": [{"name": "shapes", "batchsize": 3, "source": {"kind": "world", "name": "shapes", "nam": "x"}}],
           "modle": {}, "model": {"encoders": {"image": {"stme": "conv"}}, "heads": {"shapes": {"mlpp": True}}}}
    assert sorted(error_lines(tmp_path, raw)) == sorted([
        "  modle: unknown key; did you mean model?",
        "  tasks[shapes].batchsize: unknown key; did you mean batch_size?",
        "  tasks[shapes].source.nam: unknown key; did you mean name?",
        "  model.encoders.image.stme: unknown key; did you mean stem?",
        "  model.heads.shapes.mlpp: unknown key; did you mean mlp?",
    ])


def test_unknown_key_without_a_near_name_lists_the_valid_keys(tmp_path):
    (line,) = error_lines(tmp_path, {**BASE, "data": {"wibble": 1}})
    assert line == "  data.wibble: unknown key; valid keys: root, seed, clean"


def test_missing_required_key_says_what_it_is_for(tmp_path):
    from cotrain.config import ExperimentConfig, TaskConfig

    (line,) = error_lines(tmp_path, {"tasks": [{"name": "q"}]})
    assert line == f"  tasks[q].source: required key missing ({TaskConfig.model_fields['source'].description})"
    assert "where the task's examples come from" in line.lower()
    (line,) = error_lines(tmp_path, {"name": "x"})
    assert line == f"  tasks: required key missing ({ExperimentConfig.model_fields['tasks'].description})"


# ----------------------------------------------------------------- validator errors: the key, not the input
def test_validator_error_names_the_key_without_dumping_the_input(tmp_path):
    raw = {"tasks": [{"name": "q", "source": {"kind": "vqa_v2", "files": {"train": {"questions": "q.json"}}}}]}
    (line,) = error_lines(tmp_path, raw)
    assert line == "  tasks[q].source.regions: a vqa_v2 source needs `regions` (region features) or `images` (pixels)"
    assert "{" not in line and "q.json" not in line


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "model": {"dim": 30, "num_heads": 4}}, "  model.dim: dim (30) must be divisible by num_heads (4)"),
    ({**BASE, "model": {"coattention": {"v_layers": 3, "t_layers": 2}}},
     "  model.coattention.t_layers: t_layers (2) must be at least v_layers (3)"),
    ({"tasks": [{"name": "x", "source": {"kind": "image_folder"}}]},
     "  tasks[x].source.path: an image_folder source needs `path` (the data folder, or the .tsv file)"),
    ({"tasks": [{"name": "a", "head": "sharedd", "source": {"kind": "world", "name": "shapes"}}],
      "model": {"heads": {"shared": {}}}},
     "  tasks[a].head: task 'a' uses head 'sharedd', which model.heads does not declare (declared: ['shared']); "
     "declare it, or drop `head` to give the task its own"),
    ({"tasks": BASE["tasks"] * 2}, "  tasks: task names must be unique; repeated: ['shapes']"),
])
def test_semantic_errors_name_the_key(tmp_path, raw, expected):
    assert error_lines(tmp_path, raw) == [expected]


def test_long_wrong_inputs_are_shortened(tmp_path):
    (line,) = error_lines(tmp_path, {**BASE, "run": {"out_dir": {f"k{i}": "v" * 20 for i in range(20)}}})
    assert line.startswith("  run.out_dir: Input should be a valid string (got {'k0': ")
    assert line.endswith("...)") and len(line) < 160


# ----------------------------------------------------------------- overrides that walk into the wrong thing
@pytest.mark.parametrize("raw, override, expected", [
    ({**BASE, "model": {"dim": 128}}, "model.dim.x=1", "model.dim is 128 (an int), not a section"),
    (BASE, "model.dim.x=1", "model.dim is 128 (an int, the default), not a section"),
    (BASE, "tasks.shapes.source.kind.x=1", "tasks.shapes.source.kind is 'world' (a str), not a section"),
    ({**BASE, "run": None}, "run.threads.n=2", "run.threads is null (the default), not a section"),
    ({**BASE, "optim": {"lr_drops": [10, 20]}}, "optim.lr_drops.x=1",
     "optim.lr_drops is a list of 2 entries: give an index 0..1, or set the whole list (optim.lr_drops=[...])"),
    ({**BASE, "optim": {"lr_drops": [10, 20]}}, "optim.lr_drops.2=1",
     "optim.lr_drops is a list of 2 entries: give an index 0..1, or set the whole list (optim.lr_drops=[...])"),
    (BASE, "tasks.5.batch_size=1", "tasks is a list of 1 entry: give an index 0..0 or a task name (shapes)"),
    (BASE, "tasks.-1.batch_size=1", "tasks is a list of 1 entry: give an index 0..0 or a task name (shapes)"),
    (BASE, "tasks.nosuch.batch_size=3", "tasks is a list of 1 entry: give an index 0..0 or a task name (shapes)"),
    ({**BASE, "model": {"heads": [1, 2]}}, "model.heads.a.mlp=true",
     "model.heads is a list ([1, 2]), not a section"),
    ({"tasks": 3}, "tasks.x.y=1", "tasks is 3 (an int), not a list"),
    ({"tasks": [{"name": "a", "source": ["world"]}]}, "tasks.a.source.kind=world",
     "tasks.a.source is a list (['world']), not a section"),
    (BASE, "run..steps=3", "empty key segment"),
    (BASE, "=3", "empty key segment"),
])
def test_override_into_the_wrong_kind_of_node_names_the_key(raw, override, expected):
    import copy

    with pytest.raises(ConfigError) as e:
        apply_override(copy.deepcopy(raw), override)
    assert str(e.value) == f"override {override!r}: {expected}"


def test_override_of_a_whole_list_and_into_new_sections_still_works(tmp_path):
    raw = {**BASE, "model": {"heads": None}}
    cfg = load_config(write(tmp_path, raw), ["optim.lr_drops=[5, 9]", "optim.lr_drops.1=7", "model.heads.shapes.mlp=true",
                                             "tasks.0.source.n_train=40", "tasks.shapes.eval_every=3"])
    assert cfg.optim.lr_drops == [5, 7] and cfg.model.heads["shapes"].mlp is True
    assert cfg.tasks[0].source.n_train == 40 and cfg.tasks[0].eval_every == 3


def test_lr_mult_under_the_accumulate_schedule_is_refused_unless_it_is_a_loss_scale():
    raw = {"tasks": [{"name": "a", "source": {"kind": "world", "name": "shapes"}, "lr_mult": 2.0},
                     {"name": "b", "source": {"kind": "world", "name": "sounds"}}],
           "schedule": {"kind": "accumulate"}}
    with pytest.raises(ConfigError, match=r"tasks\[a\].lr_mult: .*accumulate schedule makes one update"):
        config_from_dict(raw)
    ok = config_from_dict({**raw, "optim": {"task_lr_mode": "loss_scale"}})
    assert ok.tasks[0].lr_mult == 2.0
    config_from_dict({**raw, "schedule": {"kind": "uniform"}})  # one task per update: lr_mult applies


def test_retrieval_data_candidates_cover_the_negatives_and_stay_at_the_default_when_mined():
    from cotrain.config import RetrievalConfig

    assert RetrievalConfig().data_candidates == 12
    assert RetrievalConfig(candidates=30).data_candidates == 30
    assert RetrievalConfig(candidates=2, negatives=5).data_candidates == 5  # enough for the negatives
    # a mined file replaces the data's candidates: the data makes the default number (a shared world cache)
    assert RetrievalConfig(candidates=100, mined="m.safetensors").data_candidates == 12
    assert RetrievalConfig(candidates=100, negatives=20, mined="m.safetensors").data_candidates == 20
