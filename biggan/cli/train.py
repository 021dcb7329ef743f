"""`biggan` commands: train (runs the `train-biggan` flow) and sample (sheets from a checkpoint)."""

from __future__ import annotations

from pathlib import Path

import click

from biggan.cli.common import CHECKPOINT_OPTION, RUN_OPTION, echo_json, main, preset_options
from biggan.config import parse_override


@main.command("train")
@preset_options
@click.option("--shards", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Shard set (folder with dataset.json) or a root holding train/ and val/.")
@click.option("--workers", "num_workers", type=int, default=None, help="Ray Train workers (0 = in-process).")
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Train on GPUs (NCCL) or CPUs (gloo).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train_command(preset: str, overrides: tuple[str, ...], shards: Path | None, num_workers: int | None,
                  use_gpu: bool | None, dry_run: bool) -> None:
    """Train BigGAN: the same `train-biggan` flow the Prefect deployment runs."""
    from biggan.train.launcher import experiment_from_params

    try:
        pairs = dict(parse_override(text) for text in overrides)
        cfg = experiment_from_params(preset, pairs, None if shards is None else str(shards), num_workers, use_gpu)
    except (KeyError, ValueError) as err:
        raise click.UsageError(str(err)) from err
    if dry_run:
        echo_json(cfg.model_dump(mode="json"))
        return
    from flows.train import train_biggan_flow

    result = train_biggan_flow(preset=preset, overrides=pairs, shards=None if shards is None else str(shards),
                               num_workers=num_workers, use_gpu=use_gpu)
    echo_json(result)


@main.command("sample")
@RUN_OPTION
@CHECKPOINT_OPTION
@click.option("--classes", default="0", show_default=True, help="Comma-separated class indices, one row each.")
@click.option("--per-class", type=int, default=8, show_default=True, help="Samples per class.")
@click.option("--truncation", type=float, default=None, help="Resample |z| above this threshold (Section 3.1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--raw", is_flag=True, help="Use the trained G instead of the EMA G.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def sample_command(run_dir: Path, checkpoint: Path | None, classes: str, per_class: int,
                   truncation: float | None, seed: int, raw: bool, out: Path) -> None:
    """PNG samples per class (OUT/<class>/*.png) and a sheet, from a checkpoint's EMA G with standing statistics (Appendix C.1)."""
    import torch

    from biggan.eval.sampling import standing_stats_
    from biggan.eval.sheets import draw_class_samples, save_class_folders, save_grid_atomic
    from biggan.train.checkpoint import checkpoint_to_evaluate, load_generator

    try:
        class_list = [int(c) for c in classes.split(",") if c.strip()]
    except ValueError as err:
        raise click.UsageError(f"--classes must be comma-separated integers, got {classes!r}") from err
    chosen = checkpoint or checkpoint_to_evaluate(run_dir)
    G, cfg, iteration = load_generator(chosen, ema=not raw)
    bad = [c for c in class_list if not 0 <= c < cfg.model.num_classes]
    if bad or not class_list:
        raise click.UsageError(f"classes must be in 0..{cfg.model.num_classes - 1}; got {class_list}")
    standing_stats_(G, cfg.model.num_classes, cfg.train.standing_stats_batches,
                    min(cfg.train.batch_size, 64), truncation, "cpu", prior=cfg.model.latent, seed=seed)
    name = f"samples_{Path(chosen).name}_t{truncation if truncation is not None else 'none'}.png"
    rows = draw_class_samples(G, class_list, per_class, truncation, seed, prior=cfg.model.latent)
    files = save_class_folders(rows, class_list, Path(out))
    path = save_grid_atomic(torch.cat(rows), Path(out) / name, nrow=per_class)
    echo_json({"sheet": str(path), "folders": sorted({str(f.parent) for f in files}), "images": len(files),
               "checkpoint": str(chosen), "iteration": iteration})
