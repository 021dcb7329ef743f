"""What a study is (StudySpec, written as `<store>/<study>/study.json`) and how its grid is written.

A grid is either a product of values per dotted key (`--grid train.batch_size=16,32,64`, repeated;
or `grid:` in a YAML file) or an explicit list of cells (`cells:` in a YAML file, or a named study
preset: Table 1's rows are not a product). A YAML grid file:

    set:   {train.iterations: 2000}              # optional: every cell
    grid:  {train.batch_size: [16, 32, 64]}      # a product ...
    cells:                                       # ... or explicit cells (not both)
      - {name: narrow, model.ch: 8}
      - {name: wide, model.ch: 16, model.d_ch: 16}
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from biggan.config import ConfigError
from biggan.config.base import Strict

STUDY_FILE = "study.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name (as run names: no '/')


class StudyError(ConfigError):
    """A study that cannot run as written: one line naming the key, cell or value."""


class StudySpec(Strict):
    """A study: base preset + overrides, a grid (product or explicit cells) and seeds."""

    name: str = Field(description="the study's folder in the run store; its runs are <cell>-s<seed> there")
    preset: str = Field("digits32", description="base preset (biggan.presets) every cell starts from")
    study_preset: str | None = Field(None, description="the named study (biggan.study.presets) it came from")
    overrides: dict[str, Any] = Field({}, description="dotted overrides of every cell (--set)")
    grid: dict[str, list[Any]] = Field({}, description="dotted key -> values; the cells are their product")
    cells: list[dict[str, Any]] = Field(
        [], description="explicit cells instead of a product: dotted overrides each, 'name' optional")
    seeds: list[int] = Field([0], min_length=1, description="train.seed of each cell's runs")
    shards: str | None = Field(None, description="shard set or root (train/ + val/); None = the preset's")
    num_workers: int | None = Field(None, ge=0, description="Ray Train workers per run; None = the preset's")
    use_gpu: bool | None = Field(None, description="one GPU per worker; None = the preset's")
    every_checkpoint: bool = Field(False, description="score every checkpoint of each run, not only the one "
                                                     "to evaluate (its last healthy one)")
    truncation_curve: bool = Field(True, description="sweep eval.thresholds at each run's evaluated checkpoint "
                                                     "for the best-FID truncation point (Section 3.1)")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"study name {value!r} must be letters, digits, '.', '_' or '-' (no '/'), starting "
                             f"with a letter or digit")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds {value} repeat a seed")
        return value


@dataclass(frozen=True)
class Cell:
    name: str  # folder-safe; runs are <name>-s<seed>
    overrides: dict[str, Any]  # the cell's own dotted overrides (the spec's `overrides` apply too)


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """`key=v1,v2,...` (each value YAML: numbers, null, true, [lists]) -> (key, values)."""
    import yaml

    if "=" not in text:
        raise StudyError(f"--grid {text!r} is not of the form key=value1,value2")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        values = yaml.safe_load(f"[{raw}]")
    except yaml.YAMLError as err:
        raise StudyError(f"--grid {text!r}: the values are not valid YAML ({str(err).splitlines()[0]})") from None
    if not values:
        raise StudyError(f"--grid {key}= lists no values")
    return key, values


def parse_grid_options(texts: tuple[str, ...] | list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, values = parse_grid_option(text)
        if key in grid:
            raise StudyError(f"--grid {key} is given twice; list all its values in one --grid {key}=v1,v2")
        grid[key] = values
    return grid


def load_grid_file(path: str | Path) -> dict[str, Any]:
    """{"overrides", "grid", "cells"} from a YAML grid file (module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise StudyError(f"grid file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise StudyError(f"grid file {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or set(data) - {"set", "grid", "cells"}:
        extra = sorted(set(data) - {"set", "grid", "cells"}) if isinstance(data, dict) else "not a mapping"
        raise StudyError(f"grid file {path}: {extra}: it holds only set, grid and cells")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        raise StudyError(f"grid file {path}: grid maps each dotted key to a list of values")
    cells = data.get("cells") or []
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise StudyError(f"grid file {path}: cells is a list of mappings (dotted key: value, name optional)")
    return {"overrides": dict(data.get("set") or {}), "grid": grid, "cells": cells}


# ---------------------------------------------------------------- cells and their names


def expand_cells(spec: StudySpec) -> list[Cell]:
    """The study's cells in order: the grid's product (first key slowest) or the explicit cells."""
    if spec.grid and spec.cells:
        raise StudyError("a study has a grid (a product of values) or explicit cells, not both")
    if not spec.grid and not spec.cells:
        raise StudyError("the study has an empty grid: give --grid KEY=V1,V2 (one value: seeds only), a grid "
                         "file or a study preset")
    if spec.grid:
        for key, values in spec.grid.items():
            if not values:
                raise StudyError(f"grid key {key} lists no values")
            texts = [json.dumps(v) for v in values]
            repeated = sorted({t for t in texts if texts.count(t) > 1})
            if repeated:
                raise StudyError(f"grid key {key} lists {', '.join(repeated)} more than once")
        keys = list(spec.grid)
        rows = [dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys))]
        named: list[tuple[str | None, dict[str, Any]]] = [(None, row) for row in rows]
    else:
        named = [(cell.get("name"), {k: v for k, v in cell.items() if k != "name"}) for cell in spec.cells]
    varied = varied_keys([overrides for _name, overrides in named])
    labels = key_labels(varied)
    cells = []
    for given, overrides in named:
        name = given if given is not None else cell_name(overrides, varied, labels)
        if not isinstance(name, str) or not NAME.match(name):
            raise StudyError(f"cell name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter "
                             f"or digit")
        cells.append(Cell(name=name, overrides=overrides))
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.name in seen:
            raise StudyError(f"two cells are named {cell.name} ({seen[cell.name].overrides} and {cell.overrides})")
        seen[cell.name] = cell
    return cells


def varied_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Keys whose value is not the same in every row (a key missing from a row counts as differing)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [k for k in keys if len({repr(row.get(k, _MISSING)) for row in rows}) > 1]


_MISSING = object()


def key_labels(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest dotted suffix that no other key ends with (train.batch_size -> batch_size)."""
    labels = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            if not any(other != key and (other == label or other.endswith("." + label)) for other in keys):
                break
        labels[key] = label
    return labels


def cell_name(overrides: dict[str, Any], varied: list[str], labels: dict[str, str]) -> str:
    """`batch_size-16_ch-8` from the values of the varied keys; `base` when nothing varies."""
    parts = [f"{labels[key]}-{value_text(overrides.get(key))}" for key in varied if key in overrides]
    return "_".join(parts) or "base"


def value_text(value: Any) -> str:
    """A value as a folder-safe word: 0.0002, 2e-05, true, none, 0.0-0.999, censored_normal."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = "-".join(value_text(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"
