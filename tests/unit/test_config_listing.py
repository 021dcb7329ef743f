"""`biggan config` lists every key of the config tree with a description (none left undocumented)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from biggan.cli import main
from biggan.config import ExperimentConfig
from biggan.config.listing import list_keys
from biggan.presets import PRESETS, get_preset


def _leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _leaves(annotation, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_key_of_the_tree_is_listed_with_a_description(preset):
    keys = list_keys(get_preset(preset))
    assert {k.key for k in keys} == _leaves(ExperimentConfig)
    undocumented = [k.key for k in keys if len(k.description.strip()) < 8]
    assert undocumented == []


def test_config_command_lists_the_preset_values():
    result = CliRunner().invoke(main, ["config", "--preset", "imagenet128", "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["key"]: row for row in json.loads(result.output)}
    assert listed["model.ch"]["value"] == 96 and listed["eval.standing_passes"]["value"] == 100
    assert listed["train.betas"]["type"] == "tuple[float, float]"
    text = CliRunner().invoke(main, ["config", "--preset", "digits32", "--set", "train.iterations=7"]).output
    assert "train.iterations" in text and "= 7" in text and "G steps to train for" in text
    bad = CliRunner().invoke(main, ["config", "--set", "train.iteratons=7"])
    assert bad.exit_code == 2 and "did you mean train.iterations" in bad.output
