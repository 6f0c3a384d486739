"""The config reference, docs/config.md, rendered from the schema in :mod:`cotrain.config`.

Every key gets a row: its dotted path (``tasks[].source.kind``, ``model.heads.<key>.mlp``), its
type with the schema's bounds, its default and the field's ``description``; every section gets its
class docstring; the source kinds get a table of the keys each one requires and uses. The schema is
the one source of truth: change a description there, then regenerate::

    python -m cotrain.config_docs > docs/config.md

(``tests/test_config_docs.py`` fails while the file differs from what this renders.)
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .config import SOURCE_KINDS, ExperimentConfig, SourceConfig
from .config_schema import is_section, unwrap_optional

REGENERATE = "python -m cotrain.config_docs > docs/config.md"

_INTRO = f"""\
# Config reference

<!-- generated from src/cotrain/config.py by `{REGENERATE}`; edit the schema, not this file -->

An experiment is one YAML file. Only `tasks` is required; every other key has the default shown
here. Override any key on the command line with `key.sub=value` (the value is read as YAML), a
task by its name or index: `cotrain train my.yaml run.steps=500 tasks.shapes.batch_size=16
model.encoders.image.stem=conv`. An unknown key, a value of the wrong type or a missing required
key stops the run with the file, the dotted key and the nearest valid names
(`tasks[shapes].batchsize: unknown key; did you mean batch_size?`).

```yaml
tasks:
  - name: shapes
    source: {{kind: world, name: shapes}}
  - name: pets
    source: {{kind: image_folder, path: data/pets}}
    batch_size: 64
run: {{steps: 2000, eval_every: 250}}
```

In the tables, `[]` stands for any entry of a list (`tasks[].batch_size`) and `<key>` for any key
of a mapping (`model.heads.<key>.mlp`); "section" rows are described under their own heading.
"""


def render_config_reference() -> str:
    """The whole of docs/config.md."""
    out = [_INTRO]
    _render_section(ExperimentConfig, "", out)
    return "\n".join(out).rstrip("\n") + "\n"


def _render_section(model: type[BaseModel], path: str, out: list[str]) -> None:
    title = f"`{path}`" if path else "Top level"
    out += [f"## {title}", "", _cell(_doc(model)), ""]
    out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    below: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        tp = unwrap_optional(field.annotation)[0]
        section, child = _section_below(tp, key)
        if section is not None:
            below.append((section, child))
        meaning = field.description or (_doc(section).split(". ")[0].rstrip(".") if section is not None else "")
        if not meaning:
            raise ValueError(f"config field {key} ({model.__name__}.{name}) has no description")
        out.append(f"| `{key}` | {_type(field)} | {_default(field)} | {_cell(meaning)} |")
    out.append("")
    if model is SourceConfig:
        _render_source_kinds(out)
    for section, child in below:
        _render_section(section, child, out)


def _section_below(tp: Any, key: str) -> tuple[type[BaseModel] | None, str]:
    """A field's own section and its path: ``model.coattention``, ``tasks[]``, ``model.heads.<key>``."""
    if is_section(tp):
        return tp, key
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and is_section(args[0]):
        return args[0], f"{key}[]"
    if origin is dict and is_section(args[1]):
        return args[1], f"{key}.<key>"
    return None, key


def _render_source_kinds(out: list[str]) -> None:
    from .data.formats import coco_detection
    from .data.formats.vl.source import HEAD_TYPES, ROLES

    roles_of = {**ROLES, "coco_detection": coco_detection.ROLES}
    head_of = {**HEAD_TYPES, "coco_detection": coco_detection.HEAD_TYPE}

    out += ["### Source kinds", "",
            "What each `tasks[].source.kind` reads, the keys it requires (one of the keys joined by \"or\") "
            "and the other keys it uses; it ignores the rest. Real vision-and-language kinds and coco_detection "
            "name their annotation files in `files` by split (`train`, `val`, `test`, or, V&L only, `all` for "
            "files that cover every split) and role.", "",
            "| kind | reads | requires | also uses | `files` roles | head |", "| --- | --- | --- | --- | --- | --- |"]
    for kind, spec in SOURCE_KINDS.items():
        requires = ", ".join(" or ".join(f"`{k}`" for k in keys) for keys in spec.requires)
        uses = ", ".join(f"`{k}`" for k in spec.uses)
        roles = " or ".join(f"`{r}`" for r in roles_of[kind]) if kind in ("coco_captions", "flickr30k") else ", ".join(
            f"`{r}`" for r in roles_of.get(kind, ()))
        out.append(f"| `{kind}` | {_cell(spec.reads)} | {requires} | {uses} | {roles or '—'} | {head_of.get(kind, '—')} |")
    out.append("")


def _doc(model: type[BaseModel]) -> str:
    """A class docstring as one Markdown paragraph (reST ``code`` and :role:`x` made Markdown)."""
    text = inspect.cleandoc(model.__doc__ or "")
    if not text:
        raise ValueError(f"config section {model.__name__} has no docstring")
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text).replace("``", "`")
    return " ".join(text.split())


def _type(field: FieldInfo) -> str:
    tp, optional = unwrap_optional(field.annotation)
    text = _type_name(tp)
    bounds = _bounds(field)
    if bounds:
        text += f" ({bounds})"
    return text + (" or null" if optional else "")


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if is_section(tp):
        return "section"
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}" if not is_section(args[0]) else "list of sections"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if not is_section(args[1]) else "mapping of sections"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _bounds(field: FieldInfo) -> str:
    symbols = ((at.Ge, "≥", "ge"), (at.Gt, ">", "gt"), (at.Le, "≤", "le"), (at.Lt, "<", "lt"))
    return ", ".join(f"{sym} {getattr(m, attr)}" for m in field.metadata for cls, sym, attr in symbols if isinstance(m, cls))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "—"
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return f"`{text}`"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: ``|`` escaped; outside `code`, ``<`` ``>`` ``*`` too (so
    ``<image_id>.npz`` is not read as an HTML tag)."""
    parts = text.replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts).replace("|", "\\|")


def main() -> None:
    sys.stdout.write(render_config_reference())


if __name__ == "__main__":
    main()
