"""`biggan` commands that bring weights in and take generators out: import bigganpytorch, import
pretrained-biggan, export.

No flow runs here: both are a read, a conversion and a write (biggan.interop.run_store,
biggan.export.run). Every error a user can cause is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from biggan.cli.common import echo_json, main, open_run, run_options, store_option
from biggan.presets import PRESETS

if TYPE_CHECKING:  # the CLI imports the interop package only when a command runs
    from biggan.interop.run_store import ImportedRunWritten


@main.group("import")
def import_group() -> None:
    """Bring someone else's BigGAN weights in as a run of the store."""


@import_group.command("bigganpytorch")
@click.option("--weights", required=True, type=click.Path(path_type=Path),
              help="Folder as BigGAN-PyTorch's utils.save_weights writes it (G.pth, D.pth, G_ema.pth, state_dict.pth).")
@click.option("--name", default=None, help="Name of the new run; default: a new number, 00007-bigganpytorch.")
@store_option
@click.option("--preset", default=None, type=click.Choice(sorted(PRESETS)),
              help="Check the files against this preset's architecture and take its train/eval settings; "
                   "default: the architecture from the files, settings of the preset of their resolution.")
@click.option("--shards", default=None,
              help="Shard set (or root with train/ and val/) of the same classes and resolution, for evaluation; "
                   "without it the run can be sampled, interpolated, exported and fine-tuned from, not evaluated.")
@click.option("--suffix", default=None, help="One of save_weights' extra copies: copy0, best0, ...")
def import_bigganpytorch_command(weights: Path, name: str | None, store: str, preset: str | None,
                                 shards: str | None, suffix: str | None) -> None:
    """BigGAN-PyTorch weights -> a finished run (options.json, one checkpoint, marked for evaluation)."""
    from biggan.interop.run_store import write_imported_run

    _import_and_report(lambda: write_imported_run(weights, store, name=name, preset=preset, shards=shards,
                                                  suffix=suffix))


@import_group.command("pretrained-biggan")
@click.option("--weights", required=True, type=click.Path(path_type=Path),
              help="Folder of pytorch-pretrained-biggan's files for a TF-Hub BigGAN-deep G: config.json and "
                   "pytorch_model.bin (what BigGAN.from_pretrained('biggan-deep-256') downloads).")
@click.option("--name", default=None, help="Name of the new run; default: a new number, 00007-biggan-deep-256.")
@store_option
@click.option("--shards", default=None,
              help="Shard set (or root with train/ and val/) of the same classes and resolution, for evaluation; "
                   "without it the run can be sampled, interpolated, exported and fine-tuned from, not evaluated.")
def import_pretrained_command(weights: Path, name: str | None, store: str, shards: str | None) -> None:
    """TF-Hub's BigGAN-deep G -> a finished run whose G and G_ema sample as the released model does, with its
    BN statistics stored per truncation value (no D was released: a fresh one, trained by --init-from runs)."""
    from biggan.interop.pretrained_store import write_pretrained_run

    _import_and_report(lambda: write_pretrained_run(weights, store, name=name, shards=shards))


def _import_and_report(write: Callable[[], ImportedRunWritten]) -> None:
    """Both imports: run the write, print the new run as JSON; an error a user can cause is one line."""
    from biggan.config import ConfigError
    from biggan.interop import InteropError

    try:
        written = write()
    except (InteropError, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    cfg = written.config
    echo_json({"run": written.run.uri, "name": written.run.name, "checkpoint": written.checkpoint.uri,
               "iteration": written.checkpoint.iteration, "model": cfg.model.model_dump(mode="json"),
               "train_shards": cfg.data.train_shards, "notes": written.notes})


@main.command("export")
@run_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--truncation", type=float, default=None,
              help="Threshold the standing statistics are computed at; default: the run's eval.truncation.")
@click.option("--program", type=click.Choice(["pt2", "ts", "none"]), default="pt2", show_default=True,
              help="Self-contained program: torch.export (pt2), TorchScript (ts), or none.")
def export_command(run_ref: str, store: str, checkpoint: str | None, out: Path, truncation: float | None,
                   program: str) -> None:
    """generator.safetensors + generator.json + a program that runs with torch alone, and
    OUT/bigganpytorch/ in BigGAN-PyTorch's own layout."""
    from biggan.export.run import export_run
    from biggan.interop import InteropError
    from biggan.runs import CheckpointDamaged, RunNotFound

    if truncation is not None and truncation <= 0:
        raise click.UsageError("--truncation must be positive (leave it out for no truncation)")
    run = open_run(run_ref, store)
    try:
        result = export_run(run, out, checkpoint, truncation, None if program == "none" else program)
    except (CheckpointDamaged, RunNotFound, InteropError) as err:
        raise click.ClickException(str(err)) from None
    echo_json(result)
