"""Dotted-key overrides (`--set train.iterations=100`) and one-line config errors."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from biggan.errors import UserError


class ConfigError(UserError, ValueError):
    """A user's config mistake, said in one line that names the key, the value and the rule."""


def _keys(data: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        out.append(dotted)
        if isinstance(value, dict):
            out.extend(_keys(value, dotted + "."))
    return out


def apply_overrides(config: BaseModel, overrides: dict[str, Any] | None) -> BaseModel:
    """A re-validated copy of `config` with dotted-key overrides applied, e.g.
    `{"train.iterations": 10, "model.ch": 32}`. Unknown keys and invalid values raise ConfigError."""
    data = config.model_dump()
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise ConfigError(_unknown(dotted, data))
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(_unknown(dotted, data))
        _check_kind(dotted, node[parts[-1]], value)
        node[parts[-1]] = value
    try:
        return type(config).model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, overrides)) from None


def _check_kind(dotted: str, current: Any, value: Any) -> None:
    """Refuse what validation would let through silently: a whole section replaced by one value
    (`--set train={}` reset every training key to its default), and a boolean where a number goes
    (`train.iterations=true` read as 1)."""
    if isinstance(current, dict):
        keys = ", ".join(f"{dotted}.{key}" for key in list(current)[:3])
        raise ConfigError(f"{dotted} is a section, not a value: set its keys one by one (e.g. {keys}, ...)")
    if isinstance(value, bool) and isinstance(current, (int, float)) and not isinstance(current, bool):
        raise ConfigError(f"{dotted} = {value!r}: a number is expected, not true/false")


def _unknown(dotted: str, data: dict) -> str:
    near = difflib.get_close_matches(dotted, _keys(data), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(near)}?" if near else " (biggan config lists every key)"
    return f"unknown config key {dotted!r}{hint}"


def describe_validation_error(err: ValidationError, overrides: dict[str, Any] | None = None) -> str:
    """pydantic's errors as one line: `train.betas = [0.0, 1.0]: each Adam beta must be in [0, 1)`."""
    parts = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"] if not isinstance(p, int))
        given = (overrides or {}).get(key, item.get("input"))
        message = " ".join(str(item["msg"]).removeprefix("Value error, ").split())  # one line
        shown = f"{key} = {given!r}: " if key and not isinstance(given, dict) else (f"{key}: " if key else "")
        parts.append(f"{shown}{message}")
    return "; ".join(parts)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `key=value` CLI override; the value is read as YAML (numbers, bools, lists)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
