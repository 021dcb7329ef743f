"""`biggan` commands: model (parameter counts against the paper)."""

from __future__ import annotations

from pathlib import Path

import click

from biggan.cli.common import CHECKPOINT_OPTION, RUN_OPTION, echo_json, main, resolve_experiment


@main.command("params")
@click.option("--table", "tables", multiple=True, type=click.Choice(["1", "3", "3fit"]),
              default=("1", "3", "3fit"),
              show_default=True, help="Which paper table(s) to compare against.")
@click.option("--preset", "preset", default=None,
              help="Instead, count the G and D of this preset (with --set overrides).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for --preset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def params(tables: tuple[str, ...], preset: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """G + D parameter counts vs Table 1 (128 px, 1K classes) and Table 3 (256 px, 8.5K classes).

    Totals leave out G's shared class embedding, as the paper's do. "3fit" (rows marked
    Table 3*) repeats Table 3 with embeddings sized for JFT's full 18,291-label vocabulary
    and dim_z 168: our reading of what the paper counted (see biggan/models/params.py).
    """
    from biggan.models.params import TABLE1, TABLE3, TABLE3_FIT, comparison, count_parameters, format_table

    if preset is not None:
        cfg = resolve_experiment(preset, overrides).model
        count = count_parameters(cfg)
        result = {"preset": preset, "G": count.generator, "D": count.discriminator,
                  "shared_embedding": count.shared_embedding, "total_without_shared": count.paper_total}
        if as_json:
            echo_json(result)
        else:
            click.echo(f"{preset}: G {count.generator / 1e6:.3f} M, D {count.discriminator / 1e6:.3f} M, "
                       f"G + D without shared embedding {count.paper_total / 1e6:.3f} M")
        return
    rows = ((TABLE1 if "1" in tables else []) + (TABLE3 if "3" in tables else [])
            + (TABLE3_FIT if "3fit" in tables else []))
    result = comparison(rows)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_table(result))




@main.command("interpolate")
@RUN_OPTION
@CHECKPOINT_OPTION
@click.option("--classes", default="0,1", show_default=True, help="Comma-separated class indices, one row each.")
@click.option("--steps", type=int, default=8, show_default=True, help="Images per row, endpoints included.")
@click.option("--truncation", type=float, default=None, help="Resample |z| above this threshold (Section 3.1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def interpolate_command(run_dir: Path, checkpoint: Path | None, classes: str, steps: int,
                        truncation: float | None, seed: int, out: Path) -> None:
    """Interpolation grids from a checkpoint's EMA G: z with class fixed, class with z fixed."""
    from biggan.eval.sampling import standing_stats_
    from biggan.eval.sheets import save_interpolations
    from biggan.train.checkpoint import checkpoint_to_evaluate, load_generator

    try:
        class_list = [int(c) for c in classes.split(",") if c.strip()]
    except ValueError as err:
        raise click.UsageError(f"--classes must be comma-separated integers, got {classes!r}") from err
    if steps < 2:
        raise click.UsageError("--steps must be at least 2")
    chosen = checkpoint or checkpoint_to_evaluate(run_dir)
    G, cfg, iteration = load_generator(chosen)
    bad = [c for c in class_list if not 0 <= c < cfg.model.num_classes]
    if bad or not class_list:
        raise click.UsageError(f"classes must be in 0..{cfg.model.num_classes - 1}; got {class_list}")
    standing_stats_(G, cfg.model.num_classes, cfg.train.standing_stats_batches,
                    min(cfg.train.batch_size, 64), truncation, "cpu", prior=cfg.model.latent, seed=seed)
    written = {}
    for mode in ("z", "class"):
        path = Path(out) / f"interp_{mode}_{Path(chosen).name}.png"
        written[mode] = str(save_interpolations(G, path, class_list, steps, truncation, seed, mode=mode,
                                                prior=cfg.model.latent))
    echo_json({"interpolations": written, "checkpoint": str(chosen), "iteration": iteration})
