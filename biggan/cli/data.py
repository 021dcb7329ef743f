"""`biggan` commands: data (demo-data, shard imagenet, shard jft). Shard commands run the
Prefect flow `shard-dataset`, imported inside the command so `import biggan` stays Prefect-free."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from biggan.cli.common import echo_json, main
from biggan.config import SUPPORTED_RESOLUTIONS, ShardConfig


@main.command("demo-data")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for imagenet/{train,val}/ and manifest.jsonl.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the stratified val split.")
def demo_data(out: Path, seed: int) -> None:
    """Write scikit-learn's bundled digits as an ImageNet tree and a JFT-style manifest (offline)."""
    from biggan.data.demo import write_demo_data

    data = write_demo_data(out, seed=seed)
    echo_json({"imagenet_root": data.imagenet_root, "manifest": data.manifest,
               "val_manifest": data.val_manifest, "train_images": data.num_train, "val_images": data.num_val})


@main.group("shard")
def shard() -> None:
    """Shard a dataset into WebDataset tars + dataset.json (runs the `shard-dataset` flow)."""


def _common_options(func):
    options = [
        click.option("--out", required=True,
                     help="Output shard set for the tars and dataset.json: a folder or a URI (s3://bucket/prefix)."),
        click.option("--resolution", required=True, type=int,
                     help=f"Target square size: one of {', '.join(map(str, SUPPORTED_RESOLUTIONS))}."),
        click.option("--min-size", type=int, default=None, help="Skip images whose short edge is below this."),
        click.option("--samples-per-shard", type=int, default=1000, show_default=True),
        click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True),
        click.option("--jpeg-quality", type=int, default=95, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the source-list shuffle."),
        click.option("--ray-address", default=None, help="Write shards as Ray tasks on this cluster."),
        click.option("--dry-run", is_flag=True, help="Print the validated config and exit."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(values: dict, dry_run: bool) -> None:
    from biggan.config import describe_validation_error
    from biggan.storage import normalize

    values = {**values, "out": normalize(values["out"])}
    try:
        config = ShardConfig(**values)
    except ValidationError as err:
        raise click.UsageError(describe_validation_error(err)) from None
    if dry_run:
        echo_json(config.model_dump(mode="json"))
        return
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.shard import shard_dataset_flow

    try:
        echo_json(shard_dataset_flow(config=config))
    except ValueError as err:  # bad sources found while listing: a message, not a traceback
        raise click.ClickException(str(err)) from err


@shard.command("imagenet")
@click.option("--root", required=True, type=click.Path(path_type=Path), help="Folder holding train/ and val/.")
@click.option("--split", type=click.Choice(["train", "val"]), default="train", show_default=True)
@click.option("--val-ground-truth", type=click.Path(path_type=Path), default=None,
              help="Flat val/: LOC_val_solution.csv or ILSVRC2012_validation_ground_truth.txt.")
@click.option("--devkit-classes", type=click.Path(path_type=Path), default=None,
              help="For the devkit txt: wnid of each ILSVRC2012_ID, one per line, in devkit order.")
@click.option("--max-per-class", type=int, default=None,
              help="Keep at most N images of each class (a deterministic choice by --seed, recorded in "
                   "dataset.json): a small subset for experiments.")
@_common_options
def shard_imagenet(root, split, val_ground_truth, devkit_classes, max_per_class, out, resolution, min_size,
                   samples_per_shard, fmt, jpeg_quality, seed, ray_address, dry_run) -> None:
    """ROOT/train/<wnid>/*.JPEG (class = index of the wnid in sorted order), val/ in folders or flat."""
    _run(dict(source="imagenet", root=root, split=split, val_ground_truth=val_ground_truth,
              devkit_classes=devkit_classes, max_per_class=max_per_class, out=out, resolution=resolution,
              min_size=min_size, samples_per_shard=samples_per_shard, format=fmt, jpeg_quality=jpeg_quality,
              seed=seed, ray_address=ray_address), dry_run)


@shard.command("jft")
@click.option("--manifest", required=True, type=click.Path(path_type=Path),
              help='JSON lines {"path": ..., "labels": [...]}, paths relative to the manifest.')
@click.option("--top-labels", type=int, default=None, help="Keep the K most frequent labels (Section 5.2).")
@_common_options
def shard_jft(manifest, top_labels, out, resolution, min_size, samples_per_shard, fmt, jpeg_quality,
              seed, ray_address, dry_run) -> None:
    """A JFT-style multi-label manifest; the label-frequency table is stored in dataset.json."""
    _run(dict(source="jft", manifest=manifest, top_labels=top_labels, out=out, resolution=resolution,
              min_size=min_size, samples_per_shard=samples_per_shard, format=fmt,
              jpeg_quality=jpeg_quality, seed=seed, ray_address=ray_address), dry_run)
