"""docs/config.md is generated from the schema, covers every key, and is up to date."""

import inspect
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from cotrain import config as config_module
from cotrain.config import SOURCE_KINDS, VL_FORMAT_KINDS, ConfigError, SourceConfig, config_from_dict
from cotrain.config_docs import REGENERATE, main, render_config_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def schema_classes() -> list[type[BaseModel]]:
    """Every section class defined in cotrain.config (found by module membership, not by walking the schema)."""
    return [c for _, c in inspect.getmembers(config_module, inspect.isclass)
            if issubclass(c, BaseModel) and c.__module__ == config_module.__name__ and c.model_fields]


def rows(text: str) -> dict[str, list[str]]:
    """`key` -> its other cells, for every row of the reference's tables (keys, and source kinds)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if m:
            assert m.group(1) not in out, f"two rows for {m.group(1)}"
            out[m.group(1)] = re.split(r"(?<!\\) \| ", m.group(2))
    return out


def test_docs_config_md_is_up_to_date():
    assert DOC.is_file(), f"docs/config.md is missing; generate it with `{REGENERATE}`"
    assert DOC.read_text() == render_config_reference(), f"docs/config.md is out of date; regenerate it with `{REGENERATE}`"


def test_module_entry_point_prints_the_reference(capsys):
    main()
    assert capsys.readouterr().out == render_config_reference()


def test_every_field_has_a_one_line_meaning_in_the_schema():
    for cls in schema_classes():
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} needs a docstring (its section's text)"
        for name, field in cls.model_fields.items():
            is_section = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            if not is_section:
                assert field.description and "\n" not in field.description, f"{cls.__name__}.{name} needs a one-line description"


def test_every_key_of_every_section_has_exactly_one_row():
    table = rows(render_config_reference())
    key_rows = [k for k in table if k not in SOURCE_KINDS]
    assert len(key_rows) == sum(len(c.model_fields) for c in schema_classes())
    by_leaf = {}
    for key in key_rows:
        by_leaf.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    for cls in schema_classes():
        for name in cls.model_fields:
            assert name in by_leaf, f"{cls.__name__}.{name} has no row in the reference"


@pytest.mark.parametrize("key, type_, default, meaning", [
    ("tasks[].batch_size", "int (≥ 1)", "`32`", "training examples per step"),
    ("tasks[].eval_every", "int (≥ 1) or null", "`null`", "null: run.eval_every"),
    ("run.eval_every", "int (≥ 1)", "`500`", "validation interval"),
    ("run.threads", "int (≥ 1) or null", "`null`", "threads"),
    ("tasks[].source.images", "str or null", "`null`", "a folder of images"),
    ("tasks[].source.kind", "one of `world`, `image_folder`", "`world`", "what the examples are read from"),
    ("model.encoders.image.stem", "one of `patch`, `conv`", "`patch`", "stride-2 3x3 convolutions"),
    ("model.encoders.image.stem_widths", "list of int", "`[32, 64]`", "channel widths"),
    ("model.heads.<key>.mlp", "bool", "`false`", "Linear-GELU-Linear"),
    ("tasks[].name", "str", "**required**", "unique name"),
    ("optim.lr_drop_factor", "float (> 0.0, ≤ 1.0)", "`0.1`", "lr_drops"),
    ("tasks[].source.regions", "str or null", "`null`", "&lt;image_id&gt;.npz"),
])
def test_rows_give_type_default_and_meaning(key, type_, default, meaning):
    type_cell, default_cell, meaning_cell = rows(render_config_reference())[key]
    assert type_cell.startswith(type_) and default_cell == default and meaning in meaning_cell


def test_source_kinds_table_matches_the_validator():
    assert set(get_args(SourceConfig.model_fields["kind"].annotation)) == set(SOURCE_KINDS)
    assert {k for k, s in SOURCE_KINDS.items() if ("files",) in s.requires} == set(VL_FORMAT_KINDS) | {"coco_detection"}
    for kind, spec in SOURCE_KINDS.items():
        for key in {k for keys in spec.requires for k in keys} | set(spec.uses):
            assert key in SourceConfig.model_fields, f"{kind} names {key}, which is no source key"
        values = {"name": "shapes", "path": "p", "files": {"train": {"x": "y"}}, "regions": "r", "images": "i",
                  "glue_task": "sst2"}
        full = {"kind": kind, **{keys[0]: values[keys[0]] for keys in spec.requires}}
        SourceConfig.model_validate(full)  # the required keys suffice
        for keys in spec.requires:
            without = {k: v for k, v in full.items() if k not in keys}
            raw = {"tasks": [{"name": "t", "source": without}]}
            with pytest.raises(ConfigError, match=rf"tasks\[t\]\.source\.{keys[0]}: an? {kind} source needs `{keys[0]}`"):
                config_from_dict(raw)
            for alternative in keys[1:]:  # any one of the alternatives is enough
                SourceConfig.model_validate({**without, alternative: values[alternative]})


def test_world_kind_lists_every_world_task():
    from cotrain.data.world import WORLD_TASKS
    from cotrain.data.world.text import TEXT_TASKS
    from cotrain.data.world.vl.build import VL_TASKS

    listed = re.split(r"[,;:]\s*|\s+", SOURCE_KINDS["world"].reads)
    assert set(WORLD_TASKS) | set(VL_TASKS) | set(TEXT_TASKS) <= set(listed)


def test_source_kinds_table_names_the_annotation_roles():
    from cotrain.data.formats.vl.source import ROLES

    text = render_config_reference()
    line = next(l for l in text.splitlines() if l.startswith("| `vqa_v2` |"))
    assert all(f"`{r}`" in line for r in ROLES["vqa_v2"]) and line.endswith("| vqa |")
    line = next(l for l in text.splitlines() if l.startswith("| `image_folder` |"))
    assert "| `path` | `val_fraction`, `test_fraction`, `seed` |" in line
