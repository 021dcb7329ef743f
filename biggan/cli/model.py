"""`biggan` commands: model (parameter counts against the paper)."""

from __future__ import annotations

from pathlib import Path

import click

from biggan.cli.common import echo_json, main, open_run, preset_config, run_options


@main.command("params")
@click.option("--table", "tables", multiple=True, type=click.Choice(["1", "3", "3fit"]),
              default=("1", "3", "3fit"),
              show_default=True, help="Which paper table(s) to compare against.")
@click.option("--preset", "preset", default=None,
              help="Instead, count the G and D of this preset (with --set overrides).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for --preset.")
@click.option("--arch", type=click.Choice(["biggan", "deep"]), default="biggan", show_default=True,
              help="deep: BigGAN-deep's G and D at 128/256/512 px against BigGAN-PyTorch's BigGANdeep.py and "
                   "TF-Hub's released generators, instead of the paper's tables.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def params(tables: tuple[str, ...], preset: str | None, overrides: tuple[str, ...], arch: str, as_json: bool) -> None:
    """G + D parameter counts vs Table 1 (128 px, 1K classes) and Table 3 (256 px, 8.5K classes).

    Totals leave out G's shared class embedding, as the paper's do. "3fit" (rows marked
    Table 3*) repeats Table 3 with embeddings sized for JFT's full 18,291-label vocabulary
    and dim_z 168: our reading of what the paper counted (see biggan/models/params.py).
    With --arch deep: BigGAN-deep (ch 128, 1,000 classes, z 128), whose counts the paper does
    not print, against the counts of BigGAN-PyTorch's and TF-Hub's own classes.
    """
    from biggan.models.params import (
        DEEP,
        TABLE1,
        TABLE3,
        TABLE3_FIT,
        comparison,
        count_parameters,
        deep_comparison,
        format_deep_table,
        format_table,
    )

    if preset is not None:
        cfg = preset_config(preset, overrides).model
        if cfg.num_classes is None:  # it comes from the shard set; count ImageNet's unless --set
            cfg = cfg.model_copy(update={"num_classes": 1000})
        count = count_parameters(cfg)
        result = {"preset": preset, "num_classes": cfg.num_classes, "G": count.generator, "D": count.discriminator,
                  "shared_embedding": count.shared_embedding, "total_without_shared": count.paper_total}
        if as_json:
            echo_json(result)
        else:
            click.echo(f"{preset} ({cfg.num_classes} classes): G {count.generator / 1e6:.3f} M, "
                       f"D {count.discriminator / 1e6:.3f} M, "
                       f"G + D without shared embedding {count.paper_total / 1e6:.3f} M")
        return
    if arch == "deep":
        deep = deep_comparison(DEEP)
        if as_json:
            echo_json(deep)
        else:
            click.echo(format_deep_table(deep))
        return
    rows = ((TABLE1 if "1" in tables else []) + (TABLE3 if "3" in tables else [])
            + (TABLE3_FIT if "3fit" in tables else []))
    result = comparison(rows)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_table(result))


@main.command("interpolate")
@run_options
@click.option("--classes", default="0,1", show_default=True, help="Comma-separated class indices, one row each.")
@click.option("--steps", type=int, default=8, show_default=True, help="Images per row, endpoints included.")
@click.option("--truncation", type=float, default=None, help="Resample |z| above this threshold (Section 3.1).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the latents (the standing statistics use eval.seed).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def interpolate_command(run_ref: str, store: str, checkpoint: str | None, classes: str, steps: int,
                        truncation: float | None, seed: int, out: Path) -> None:
    """Interpolation grids from a checkpoint's EMA G (Appendix A, Figures 8-9): z and class together
    (joint), class with z fixed, z with class fixed."""
    from biggan.cli.common import open_for_sampling
    from biggan.cli.train import parse_classes
    from biggan.sampling.sheets import INTERPOLATION_MODES, save_interpolations

    if steps < 2:
        raise click.UsageError("--steps must be at least 2")
    G, cfg, info = open_for_sampling(open_run(run_ref, store), checkpoint, ema=True, truncation=truncation)
    class_list = parse_classes(classes, cfg.model.num_classes)
    written = {}
    for mode in INTERPOLATION_MODES:
        path = Path(out) / f"interp_{mode}_{info.name}.png"
        written[mode] = save_interpolations(G, path, class_list, steps, truncation, seed, mode=mode,
                                            prior=cfg.model.latent).uri
    echo_json({"interpolations": written, "checkpoint": info.uri, "iteration": info.iteration})


@main.command("config")
@click.option("--preset", default="digits32", show_default=True, help="Preset whose values are listed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a value before listing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def config_command(preset: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Every config key with its type, its value in PRESET and what it means (what --set takes)."""
    from biggan.config.listing import format_keys, list_keys

    keys = list_keys(preset_config(preset, overrides))
    if as_json:
        echo_json([{"key": k.key, "type": k.type, "value": k.value, "description": k.description} for k in keys])
    else:
        click.echo(format_keys(keys))
