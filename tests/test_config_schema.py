"""Walking the schema's types by key path."""

from typing import Literal

from cotrain.config import ExperimentConfig, HeadConfig, SourceConfig, TaskConfig
from cotrain.config_schema import shape, unwrap_optional, walk


def test_unwrap_optional():
    assert unwrap_optional(int | None) == (int, True)
    assert unwrap_optional(Literal["a", "b"] | None) == (Literal["a", "b"], True)
    assert unwrap_optional(int) == (int, False)


def test_walk_through_sections_lists_and_mappings():
    assert walk(ExperimentConfig, ("tasks", 0))[0] is TaskConfig
    assert walk(ExperimentConfig, ("tasks", "shapes", "source"))[0] is SourceConfig
    assert walk(ExperimentConfig, ("model", "heads", "any"))[0] is HeadConfig
    tp, field = walk(ExperimentConfig, ("tasks", 0, "source", "files", "train", "questions"))
    assert tp is str and field is None
    tp, field = walk(ExperimentConfig, ("model", "dim"))
    assert tp is int and field.default == 128
    assert walk(ExperimentConfig, ("model", "dimm")) is None
    assert walk(ExperimentConfig, ("model", "dim", "x")) is None


def test_shape():
    assert [shape(walk(ExperimentConfig, p)[0]) for p in (("model",), ("model", "heads"), ("tasks",),
            ("model", "encoders", "image", "stem_widths"), ("run", "threads"), ("tasks", 0, "source", "kind"))] == \
        ["section", "section", "list", "list", "value", "value"]
