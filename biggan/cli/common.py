"""Pieces every command shares: the root group, preset + override parsing, config printing."""

from __future__ import annotations

import json
from typing import Any

import click

from biggan.config import ConfigError, ExperimentConfig, apply_overrides, parse_override
from biggan.presets import PRESETS, get_preset

DEFAULT_STORE = "runs"


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


def store_option(func):
    """`--store URI`: where runs live (a local folder or s3://bucket/prefix; $BIGGAN_STORE)."""
    return click.option(
        "--store", default=DEFAULT_STORE, show_default=True, envvar="BIGGAN_STORE", show_envvar=True,
        help="Run store: a local folder or a storage URI such as s3://bucket/runs.",
    )(func)


def run_options(func):
    """`--run RUN [--store URI]` and `--checkpoint C`: every command that reads a trained run."""
    func = click.option(
        "--checkpoint", default=None,
        help="Checkpoint name (checkpoint_00001000) or iteration; default: the one the run marked for evaluation.",
    )(func)
    func = click.option(
        "--run", "run_ref", required=True,
        help="Run name in the store, 'latest', or the run's own path or URI.",
    )(func)
    return store_option(func)


def open_run(run_ref: str, store: str):
    """The RunStore a --run value names; a missing run is one line, not a traceback."""
    from biggan.runs import RunNotFound
    from biggan.runs.naming import find_run

    try:
        return find_run(store, run_ref)
    except RunNotFound as err:
        raise click.ClickException(str(err)) from None


def open_for_sampling(run, checkpoint: str | None, ema: bool, truncation: float | None):
    """(G ready to sample at `truncation`, the run's config, the checkpoint), opened as evaluation
    opens it (biggan.runs.opened: eval.device, eval.standing_passes); errors are one line."""
    from biggan.config import ConfigError
    from biggan.runs import CheckpointDamaged, RunNotFound
    from biggan.runs.opened import open_checkpoint

    try:
        opened = open_checkpoint(run, checkpoint)
    except (CheckpointDamaged, RunNotFound, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    return opened.generator(truncation, ema=ema), opened.cfg, opened.info


def preset_config(preset: str, overrides: tuple[str, ...], extra: dict[str, Any] | None = None) -> ExperimentConfig:
    """Preset + overrides, validated once; a bad key or value exits with a readable message."""
    try:
        pairs = dict(parse_override(text) for text in overrides)
        pairs.update(extra or {})
        return apply_overrides(get_preset(preset), pairs)  # type: ignore[return-value]
    except (KeyError, ConfigError) as err:
        raise click.UsageError(str(err)) from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
