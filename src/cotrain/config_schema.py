"""Walking the config schema's types: what sits at a key path.

The error messages use it to find the section an unknown key was written in (for the nearest valid
names) and what a missing key is for; the overrides to tell a section from a list or a value before
writing into it; :mod:`cotrain.config_docs` to list every key. A path is a sequence of field names,
list positions and mapping keys, as pydantic's error locations are: ``("tasks", 0, "source", "kind")``;
any item stands for "an entry" of a list or a mapping, so ``("tasks", "shapes")`` works too.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

Shape = Literal["section", "list", "value"]


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; any other type → ``(tp, False)``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else Union[rest]), True
    return tp, False


def is_section(tp: Any) -> bool:
    """Whether ``tp`` is a schema section (a pydantic model class)."""
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def shape(tp: Any) -> Shape:
    """``section`` for a model class or a mapping (both take ``key.sub`` paths), ``list`` for a
    list or tuple, ``value`` for anything else."""
    tp = unwrap_optional(tp)[0]
    if is_section(tp) or get_origin(tp) is dict:
        return "section"
    if get_origin(tp) in (list, tuple):
        return "list"
    return "value"


def step(tp: Any, item: str | int) -> tuple[Any, FieldInfo | None] | None:
    """The type one key below ``tp`` and, when that key is a field of a section, its FieldInfo;
    None when ``item`` is not part of the schema (an unknown field, or a key below a value)."""
    tp = unwrap_optional(tp)[0]
    if is_section(tp):
        field = tp.model_fields.get(str(item))
        return None if field is None else (field.annotation, field)
    origin = get_origin(tp)
    if origin is dict:
        return get_args(tp)[1], None
    if origin in (list, tuple) and get_args(tp):
        return get_args(tp)[0], None
    return None


def walk(root: type[BaseModel], path: Sequence[str | int]) -> tuple[Any, FieldInfo | None] | None:
    """The type at ``path`` below ``root`` and its FieldInfo (None for the root, a list entry or a
    mapping entry); None when the path leaves the schema."""
    found: tuple[Any, FieldInfo | None] | None = (root, None)
    for item in path:
        found = step(found[0], item)
        if found is None:
            return None
    return found
