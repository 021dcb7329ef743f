"""Pieces every command shares: the root group, preset + override parsing, config printing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from biggan.config import ExperimentConfig, apply_overrides, parse_override
from biggan.presets import PRESETS, get_preset


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="biggan")
def main() -> None:
    """Train BigGAN on your own images and know how good the result is."""


def preset_options(func):
    """`--preset NAME` and repeatable `--set key=value` overrides (validated, dotted keys)."""
    func = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config value, e.g. --set train.iterations=100 --set model.ch=32.",
    )(func)
    func = click.option(
        "--preset", default="digits32", show_default=True, type=click.Choice(sorted(PRESETS)),
        help="Named experiment (biggan.presets).",
    )(func)
    return func


# `--run RUN_DIR` and `--checkpoint DIR`: every command that reads a trained run takes these.
RUN_OPTION = click.option(
    "--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run directory (options.json + checkpoint_* folders).",
)
CHECKPOINT_OPTION = click.option(
    "--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
    help="Checkpoint folder; default: the one the run marked for evaluation.",
)


def resolve_experiment(preset: str, overrides: tuple[str, ...], extra: dict[str, Any] | None = None) -> ExperimentConfig:
    """Preset + overrides, validated once; a bad key or value exits with a readable message."""
    try:
        pairs = dict(parse_override(text) for text in overrides)
        pairs.update(extra or {})
        return apply_overrides(get_preset(preset), pairs)  # type: ignore[return-value]
    except (KeyError, ValueError, ValidationError) as err:
        raise click.UsageError(str(err)) from err


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
