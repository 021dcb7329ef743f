"""Every key of the config tree with its type, a value and its description: what `biggan config`
prints (the same descriptions Prefect shows in its UI form)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class KeyInfo:
    key: str  # dotted, as `--set` takes it
    type: str  # the annotation, e.g. "int | None"
    value: Any  # the value in the listed config
    description: str


def _type_name(annotation: Any) -> str:
    """A readable type: `int | None`, `'stop' | 'skip'`, `list['is' | 'fid']`, `path`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args if a is not Ellipsis)}]"
    if isinstance(annotation, type):
        return "path" if issubclass(annotation, PurePath) else annotation.__name__
    return str(annotation)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def list_keys(config: BaseModel, prefix: str = "") -> list[KeyInfo]:
    """Leaf keys of `config` (nested models are walked, not listed), in declaration order."""
    out = []
    for name, field in type(config).model_fields.items():
        value = getattr(config, name)
        annotation = field.annotation
        if _is_model(annotation):
            out.extend(list_keys(value, f"{prefix}{name}."))
            continue
        out.append(KeyInfo(key=f"{prefix}{name}", type=_type_name(annotation), value=value,
                           description=field.description or ""))
    return out


def format_keys(keys: list[KeyInfo]) -> str:
    width = max(len(k.key) for k in keys)
    lines = []
    for k in keys:
        value = str(k.value) if isinstance(k.value, PurePath) else k.value
        lines.append(f"{k.key:<{width}}  {k.type} = {value!r}\n{'':<{width}}  {k.description}")
    return "\n".join(lines)
