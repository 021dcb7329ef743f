"""`biggan` commands that run the whole DAG: pipeline (your data) and demo (the embedded digits)."""

from __future__ import annotations

import time
from typing import Any

import click

from biggan.cli.common import echo_json, main, preset_options, store_option
from biggan.config import ConfigError, parse_override

DEMO_WALL_MINUTES = 15  # the whole `biggan demo` on 2 CPU cores


def _pipeline_overrides(preset: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    from biggan.config import apply_overrides
    from biggan.presets import get_preset

    try:
        pairs = dict(parse_override(text) for text in overrides)
        apply_overrides(get_preset(preset), pairs)  # fail here, not an hour into the flow
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    return pairs


@main.command("pipeline")
@preset_options
@click.option("--source", type=click.Choice(["imagenet", "jft"]), default="imagenet", show_default=True)
@click.option("--root", default=None, help="ImageNet-style root (train/, val/) to shard first.")
@click.option("--manifest", default=None, help="JFT-style manifest to shard first.")
@click.option("--shards", default=None,
              help="Shard root (<shards>/train, /val): a folder or a URI; default: the preset's.")
@click.option("--name", default=None, help="Run name; default: a new number, 00007-<preset>.")
@store_option
@click.option("--workers", "num_workers", type=int, default=None, help="Ray Train workers (0 = in-process).")
@click.option("--gpu/--no-gpu", "use_gpu", default=None)
def pipeline_command(preset: str, overrides: tuple[str, ...], source: str, root: str | None, manifest: str | None,
                     shards: str | None, name: str | None, store: str, num_workers: int | None,
                     use_gpu: bool | None) -> None:
    """shard -> train -> {evaluate, truncation curve, memorization} (flow pipeline)."""
    pairs = _pipeline_overrides(preset, overrides)
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.pipeline import pipeline_flow

    echo_json(pipeline_flow(preset=preset, overrides=pairs, source=source, root=root, manifest=manifest,
                            shards=shards, num_workers=num_workers, use_gpu=use_gpu, name=name, store=store))


@main.command("demo")
@click.option("--data", "data_dir", default="demo", show_default=True, help="Where the embedded digits are written.")
@click.option("--shards", default="shards/digits", show_default=True, help="Shard root (train/ and val/).")
@store_option
@click.option("--workers", "num_workers", type=int, default=2, show_default=True, help="Ray Train workers.")
@click.option("--preset", type=click.Choice(["digits32", "digits32-deep"]), default="digits32", show_default=True,
              help="BigGAN's demo, or the same with BigGAN-deep's G and D (Appendix B).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value of the preset.")
def demo_command(data_dir: str, shards: str, store: str, num_workers: int, preset: str,
                 overrides: tuple[str, ...]) -> None:
    """The whole pipeline on the embedded handwritten digits, end to end, then a summary."""
    pairs = _pipeline_overrides(preset, overrides)
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.pipeline import pipeline_flow

    started = time.perf_counter()
    summary = pipeline_flow(preset=preset, overrides=pairs, shards=shards, demo_data=data_dir,
                            num_workers=num_workers, samples_per_shard=200, class_agreement=True, store=store)
    summary["wall_s"] = time.perf_counter() - started
    click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    """The human-readable end of `biggan demo`: the run, headline numbers, where the pictures are."""
    from biggan.eval.truncation import threshold_label

    metrics = summary.get("metrics") or {}
    points = summary["operating_points"]
    lines = [
        "",
        "biggan demo finished",
        f"  run                {summary['run']}",
        f"  evaluated          {summary['checkpoint'].rstrip('/').rsplit('/', 1)[-1]}",
        f"  IS / FID           {metrics.get('IS', float('nan')):.3f} / {metrics.get('FID', float('nan')):.3f}"
        "  (EMA G, standing stats, dataset-classifier features)",
        f"  best FID           {points['best_fid']['FID']:.3f} "
        f"at truncation {threshold_label(points['best_fid']['threshold'])}",
        f"  max IS             {points['max_is']['IS']:.3f} (FID {points['max_is']['FID']:.3f}) "
        f"at truncation {threshold_label(points['max_is']['threshold'])}",
    ]
    if points.get("is_matches_val"):
        p = points["is_matches_val"]
        lines.append(f"  FID at real IS     {p['FID']:.3f} (IS {p['IS']:.3f}, "
                     f"threshold {threshold_label(p['threshold'])}, {p['method']})")
    acc = summary["d_accuracy"]
    lines += [
        f"  D accuracy         train {acc['train']:.3f} / val {acc['val']:.3f}",
        f"  copying flag       {summary['copying_flag']}",
        f"  sample sheets      {', '.join(summary['sample_sheets'][-1:]) or '-'}",
        f"  truncation plot    {summary['truncation_plot']}",
        f"  NN grids           {', '.join(summary['nn_grids'])}",
        f"  metrics history    {summary['metrics_history']} ({summary['metrics_plot']})",
    ]
    wall_s = summary.get("wall_s")
    if wall_s is not None:
        lines.append(f"  wall time          {wall_s / 60:.1f} min (demo bar: {DEMO_WALL_MINUTES} min)")
    quality = summary.get("quality")
    if quality:
        agree = quality["agreement"]
        passes = {**quality["passes"], "no_copying": not summary["copying_flag"]}
        if wall_s is not None:
            passes["wall_time"] = wall_s <= DEMO_WALL_MINUTES * 60
        failed = [name for name, ok in passes.items() if not ok]
        lines += [
            f"  class agreement    {agree['mean']:.3f} mean, {agree['min']:.3f} worst class at truncation "
            f"{agree['truncation']:g} (independent judge, val accuracy {agree['judge_val_accuracy']:.3f})",
            *([f"  untruncated        {quality['agreement_untruncated']['mean']:.3f} mean, "
               f"{quality['agreement_untruncated']['min']:.3f} worst class (z from the full prior)"]
              if "agreement_untruncated" in quality else []),
            f"  FID drop           {quality['fid_untrained']:.2f} untrained -> {quality['fid_final']:.2f} final "
            f"({quality['fid_drop']:.1f}x)",
            f"  demo bar           {'NOT met' if failed else 'met'} ({', '.join(failed) or 'all criteria pass'})",
        ]
    return "\n".join(lines)
