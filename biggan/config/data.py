"""Config of the data area: sharding raw images, and where training reads shards from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from biggan.config.base import Location, Strict, check_resolution


class ShardConfig(Strict):
    """What `biggan shard ...` and the `shard-dataset` flow take."""

    source: Literal["imagenet", "jft"] = Field(description="ImageNet folder layout or JFT-style JSON-lines manifest")
    out: Location = Field(description="output shard set: a local folder or a storage URI (s3://bucket/prefix)")
    resolution: int = Field(description="target square size (Appendix C: centre crop of the long edge, area resize)")
    root: Path | None = Field(None, description="imagenet: dataset root holding train/ and val/")
    split: Literal["train", "val"] = Field("train", description="imagenet: which split to shard")
    val_ground_truth: Path | None = Field(
        None, description="imagenet flat val/: devkit txt or LOC_val_solution.csv")
    devkit_classes: Path | None = Field(
        None, description="imagenet: devkit class order (wnid per line) for the devkit txt")
    manifest: Path | None = Field(None, description='jft: JSON lines {"path": ..., "labels": [...]}')
    top_labels: int | None = Field(None, ge=1, description="jft: keep the K most frequent labels (Section 5.2)")
    min_size: int | None = Field(None, ge=1, description="skip images whose short edge is below this")
    max_per_class: int | None = Field(
        None, ge=1, description="imagenet: keep at most this many images of each class, the first of each class in "
                                "the seed's shuffle of the sorted file list (a small subset for experiments: "
                                "deterministic, recorded in dataset.json); None = all")
    samples_per_shard: int = Field(1000, ge=1, description="samples per tar")
    format: Literal["png", "jpg"] = Field("png", description="stored encoding of the pre-resized sample")
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality, only for format=jpg")
    seed: int = Field(0, description="seed of the source-list shuffle (every shard mixes classes)")
    ray_address: str | None = Field(None, description="write shards as Ray tasks on this cluster")

    _resolution = field_validator("resolution")(check_resolution)

    @field_validator("out")
    @classmethod
    def _out_can_be_a_folder(cls, value: str) -> str:
        if "://" not in value:
            for parent in [Path(value), *Path(value).parents]:
                if parent.exists():
                    if not parent.is_dir():
                        raise ValueError(f"{parent} is a file, so {value} cannot be a shard folder")
                    break
        return value

    @model_validator(mode="after")
    def _check_source(self) -> ShardConfig:
        if self.source == "imagenet":
            if self.root is None:
                raise ValueError("source 'imagenet' needs root (the folder holding train/ and val/)")
            if not Path(self.root).is_dir():
                raise ValueError(f"imagenet root {self.root} is not a folder")
        if self.source == "jft":
            if self.max_per_class is not None:
                raise ValueError("max_per_class needs one class per image (source 'imagenet'); a JFT-style "
                                 "manifest's images carry several labels")
            if self.manifest is None:
                raise ValueError("source 'jft' needs manifest (a JSON-lines file)")
            if not Path(self.manifest).is_file():
                raise ValueError(f"manifest {self.manifest} does not exist")
        return self


# data.train_shards of a run imported without a shard set (`biggan import bigganpytorch` with no
# --shards): a URI no storage serves, so nothing can take it for data. Sampling, interpolation and
# export need no images; the commands that do (evaluate, truncation-curve, memorization, resume)
# check for it and say so in one line.
NO_SHARDS = "none://imported-without-shards"


class DataConfig(Strict):
    """Where training and evaluation read shards from."""

    train_shards: Location = Field(
        description="training shard set (tars + dataset.json): a local folder or a storage URI")
    val_shards: Location | None = Field(
        None, description="held-out shard set (memorization check, FID against val); None = none")
    shuffle_buffer: int = Field(2000, ge=0, description="WebDataset sample shuffle buffer per loader worker")
    loader_workers: int = Field(1, ge=0, description="DataLoader worker processes per training rank")
    streams: int | None = Field(
        None, ge=1, description="seeded data streams the global batch is read from, shared out among the workers "
                                "(the data order does not depend on how many there are); None = the lcm of the "
                                "worker counts cluster.num_workers allows, fixed when the run starts")
    on_damaged_shard: Literal["stop", "skip"] = Field(
        "stop", description="a missing, cut or unreadable tar stops the run (stop) or is left out and counted (skip)")
    verify: bool = Field(False, description="check every tar's sha256 against dataset.json before training")
