"""`biggan` commands: train (runs the `train-biggan` flow), runs (list a store) and sample."""

from __future__ import annotations

from pathlib import Path

import click

from biggan.cli.common import echo_json, main, open_run, preset_options, run_options, store_option
from biggan.config import ConfigError, parse_override


@main.command("train")
@preset_options
@click.option("--shards", default=None,
              help="Shard set (folder or URI with dataset.json) or a root holding train/ and val/.")
@click.option("--name", default=None, help="Name of the new run; default: a new number, 00007-<preset>.")
@click.option("--resume", default=None, metavar="NAME|latest|URI",
              help="Resume this run instead of starting one (only safe keys may change with --set).")
@click.option("--init-from", "init_from", default=None, metavar="RUN_OR_URI",
              help="Start the new run from this run's G, D and G_ema (its marked checkpoint, or a checkpoint "
                   "folder) with fresh optimizers; its architecture, with num_classes from --shards.")
@store_option
@click.option("--workers", "num_workers", default=None, metavar="N|MIN-MAX",
              help="Ray Train workers, or a range MIN-MAX: elastic training on nodes that come and go (starts once "
                   "MIN fit, grows to MAX, shrinks and grows back; docs/elastic.md); 0 = in-process; default: the "
                   "preset's.")
@click.option("--gpu/--no-gpu", "use_gpu", default=None,
              help="Train on GPUs (NCCL) or CPUs (gloo); default: the preset's.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit (starts nothing).")
def train_command(preset: str, overrides: tuple[str, ...], shards: str | None, name: str | None,
                  resume: str | None, init_from: str | None, store: str, num_workers: str | None,
                  use_gpu: bool | None, dry_run: bool) -> None:
    """Train BigGAN: the same `train-biggan` flow the Prefect deployment runs."""
    from biggan.errors import UserError
    from biggan.experiment import resolve_experiment
    from biggan.runs import RunNotFound

    try:
        pairs = dict(parse_override(text) for text in overrides)
        workers = _workers(num_workers)
        cfg = resolve_experiment(preset, pairs, shards, workers, use_gpu, name=name, resume=resume, store=store,
                                 init_from=init_from)
    except (ConfigError, RunNotFound) as err:
        raise click.UsageError(str(err)) from None
    except UserError as err:  # damaged shards, unreadable data: not a usage mistake, still one line
        raise click.ClickException(str(err)) from None
    if dry_run:
        echo_json(cfg.model_dump(mode="json"))
        return
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.train import train_biggan_flow

    # The resolved name and source checkpoint go in, so the flow trains exactly the run printed by --dry-run.
    result = train_biggan_flow(preset=preset, overrides=pairs, shards=shards, num_workers=workers,
                               use_gpu=use_gpu, name=None if resume else cfg.name, resume=resume, store=store,
                               init_from=None if resume else cfg.train.init_from)
    echo_json(result)


def _workers(text: str | None) -> int | str | None:
    """--workers as the config takes it: a count, or a range MIN-MAX (checked by the config)."""
    if text is None:
        return None
    from biggan.config.cluster import parse_workers

    try:
        return parse_workers(text)
    except ValueError as err:
        raise ConfigError(f"--workers {text}: {err}") from None


@main.command("runs")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs_command(store: str, as_json: bool) -> None:
    """List the runs of a store: name, preset, iteration, last FID, state, and the rollbacks of
    runs that recovered from a collapse (train.collapse.action=rollback)."""
    import time

    from biggan.runs.naming import list_runs

    runs = list_runs(store)
    if as_json:
        echo_json([vars(r) for r in runs])
        return
    if not runs:
        click.echo(f"no runs in {store}")
        return
    click.echo(f"{'name':<28} {'preset':<12} {'iteration':>17} {'last FID':>9}  state")
    for r in runs:
        progress = f"{r.iteration if r.iteration is not None else '-'}/{r.iterations or '-'}"
        fid = f"{r.last_fid:.2f}" if r.last_fid is not None else "-"
        ago = f" ({_ago(time.time() - r.updated)} ago)" if r.updated else ""
        state = f"{r.state}{ago}{_rollbacks(r.rollbacks)}"
        click.echo(f"{r.name:<28} {r.preset or '-':<12} {progress:>17} {fid:>9}  {state}")


def _rollbacks(events: list[dict]) -> str:
    """`, 2 rollbacks (310->250, 620->500)`: where each collapsed and where it went back to."""
    if not events:
        return ""
    where = ", ".join(f"{e['collapsed_at']}->{e['to_iteration']}" for e in events)
    return f", {len(events)} rollback{'s' * (len(events) > 1)} ({where})"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@main.command("sample")
@run_options
@click.option("--classes", default="0", show_default=True, help="Comma-separated class indices, one row each.")
@click.option("--per-class", type=int, default=8, show_default=True, help="Samples per class.")
@click.option("--truncation", type=float, default=None, help="Resample |z| above this threshold (Section 3.1).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the latents (the standing statistics use eval.seed).")
@click.option("--raw", is_flag=True, help="Use the trained G instead of the EMA G.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def sample_command(run_ref: str, store: str, checkpoint: str | None, classes: str, per_class: int,
                   truncation: float | None, seed: int, raw: bool, out: Path) -> None:
    """PNG samples per class (OUT/<class>/*.png) and a sheet, from a checkpoint's EMA G with standing
    statistics (Appendix C.1), drawn as evaluation draws them (eval.device, eval.standing_passes)."""
    import torch

    from biggan.cli.common import open_for_sampling
    from biggan.sampling.sheets import draw_class_samples, save_class_folders, save_grid_atomic

    run = open_run(run_ref, store)
    G, cfg, info = open_for_sampling(run, checkpoint, ema=not raw, truncation=truncation)
    class_list = parse_classes(classes, cfg.model.num_classes)
    name = f"samples_{info.name}_t{truncation if truncation is not None else 'none'}.png"
    rows = draw_class_samples(G, class_list, per_class, truncation, seed, prior=cfg.model.latent)
    files = save_class_folders(rows, class_list, Path(out))
    path = save_grid_atomic(torch.cat(rows), Path(out) / name, nrow=per_class)
    echo_json({"sheet": path.uri, "folders": sorted({f.parent.uri for f in files}), "images": len(files),
               "checkpoint": info.uri, "iteration": info.iteration})


def parse_classes(text: str, num_classes: int) -> list[int]:
    try:
        class_list = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise click.UsageError(f"--classes must be comma-separated integers, got {text!r}") from None
    bad = [c for c in class_list if not 0 <= c < num_classes]
    if bad or not class_list:
        raise click.UsageError(f"classes must be in 0..{num_classes - 1}; got {class_list}")
    return class_list
