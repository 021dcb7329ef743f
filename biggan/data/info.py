"""`OUT/dataset.json`: the description of a shard set that training and evaluation read.

Written last and atomically by the shard writer, so its presence means the set is complete.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from biggan.errors import DataError
from biggan.storage import Location, location

DATASET_FILE = "dataset.json"


class MissingShardSet(DataError, FileNotFoundError):
    """No finished shard set (no dataset.json) where one is expected."""


class ShardEntry(BaseModel):
    """One tar of the set."""

    model_config = ConfigDict(extra="forbid")

    name: str  # file name inside the shard folder
    num_samples: int  # samples written into it
    sha256: str  # hex digest of the whole tar (byte-reproducible: mtime=0, fixed encoder)
    size: int | None = None  # bytes of the tar (None in sets written before sizes were recorded)


class SkippedEntry(BaseModel):
    """A source that was found but not written, and why."""

    model_config = ConfigDict(extra="forbid")

    path: str  # source path (or manifest line) as found
    reason: str  # human-readable cause: corrupt, zero-byte, below min size, no kept label, ...


class SubsetInfo(BaseModel):
    """How a `--max-per-class` subset was chosen from what was listed (biggan.data.shard.plan_shards)."""

    model_config = ConfigDict(extra="forbid")

    max_per_class: int  # at most this many images of each class
    listed: int  # usable images listed before the cut
    per_class: list[int]  # images kept per class index (before decoding: a decoding skip counts as kept here)
    rule: str  # how the choice is made, in words


class DatasetInfo(BaseModel):
    """The whole set: counts, class table, shard list with hashes, skipped sources."""

    model_config = ConfigDict(extra="forbid")

    source: str  # "imagenet" or "jft"
    split: str | None = None  # imagenet split; None for jft
    num_samples: int  # written samples (sum over shards)
    num_found: int  # sources found (num_samples + len(skipped) == num_found)
    num_classes: int
    resolution: int
    format: str  # "png" or "jpg": the member extension of the image in every sample
    multi_label: bool  # samples may carry more than one label (jft)
    classes: list[str]  # index -> wnid (imagenet, sorted training wnids) or label name (jft)
    class_names: list[str] | None = None  # index -> human-readable name, where the source has one
    shards: list[ShardEntry]
    skipped: list[SkippedEntry]
    label_frequencies: dict[str, int] | None = None  # jft: label name -> images carrying it (before top-K)
    seed: int  # seed of the source-list shuffle
    subset: SubsetInfo | None = None  # a --max-per-class cut of the listed images; None = every image

    def shard_locations(self, shard_dir: str | Path | Location) -> list[Location]:
        """The non-empty shards, in the set's order (local files or objects)."""
        root = location(shard_dir)
        return [root / s.name for s in self.shards if s.num_samples > 0]


def save_dataset_info(shard_dir: str | Path | Location, info: DatasetInfo) -> Location:
    target = location(shard_dir) / DATASET_FILE
    target.write_json(info.model_dump(mode="json"))
    return target


def load_dataset_info(shard_dir: str | Path | Location) -> DatasetInfo:
    """Read and validate `shard_dir/dataset.json`; a clear error when the set is incomplete."""
    target = location(shard_dir) / DATASET_FILE
    if not target.is_file():
        raise MissingShardSet(
            f"{target.uri} not found: {location(shard_dir).uri} is not a finished shard set "
            f"(run `biggan shard ...` first)")
    try:
        return DatasetInfo.model_validate_json(target.read_bytes())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the top level"
        raise DataError(f"{target.uri} is not a valid dataset.json: {first['msg']} at {where!r}") from None
