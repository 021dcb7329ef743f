"""Shard writer: plan (list + shuffle + cut), write each tar (idempotent), finalize dataset.json.

The three pieces are separate so the Prefect flow can map `write_shard` over shard indices;
`shard_dataset` chains them with a thread pool for scripts and tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import webdataset as wds
from pydantic import BaseModel, ConfigDict

from biggan.config import ShardConfig
from biggan.data.info import DatasetInfo, ShardEntry, SkippedEntry, SubsetInfo, save_dataset_info
from biggan.data.preprocess import SkipSample, encode, load_image
from biggan.data.progress import ProgressLog
from biggan.data.sources import SourceItem, SourceList, imagenet_sources, jft_sources
from biggan.files import sha256_file
from biggan.storage import Location, location

log = logging.getLogger("biggan.data")

RECORDS_DIR = ".records"  # per-shard sidecars: what a finished tar holds and its hash
TMP_MARK = ".tmp-"


class ShardPlan(BaseModel):
    """Everything needed to write any shard independently (and to check an existing one)."""

    model_config = ConfigDict(extra="forbid")

    config: ShardConfig
    classes: list[str]
    class_names: list[str] | None
    multi_label: bool
    label_frequencies: dict[str, int] | None
    listing_skipped: list[SkippedEntry]  # found but unusable before decoding (e.g. no kept label)
    shards: list[list[SourceItem]]  # shard index -> its sources, in write order
    sample_ids: list[list[int]]  # shard index -> stable sample ids (position in the sorted list)
    subset: SubsetInfo | None = None  # the --max-per-class cut, when there was one

    @property
    def num_found(self) -> int:
        return sum(len(s) for s in self.shards) + len(self.listing_skipped)

    def shard_name(self, index: int) -> str:
        return f"shard-{index:06d}.tar"


class ShardRecord(BaseModel):
    """What one finished shard holds."""

    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    num_samples: int
    sha256: str
    size: int | None = None  # bytes of the tar
    fingerprint: str  # hash of the shard's plan and its sources' size + mtime; a change invalidates the tar
    skipped: list[SkippedEntry]
    reused: bool = False  # True when an existing complete tar was verified and kept


def list_sources(cfg: ShardConfig) -> SourceList:
    if cfg.source == "imagenet":
        return imagenet_sources(cfg.root, cfg.split, cfg.val_ground_truth, cfg.devkit_classes)
    return jft_sources(cfg.manifest, cfg.top_labels)


SUBSET_RULE = ("the first max_per_class images of each class in the seed's shuffle of the sources sorted by key "
               "(the shard order): a uniform choice per class, the same for the same files and seed")


def plan_shards(cfg: ShardConfig) -> ShardPlan:
    """List the sources, shuffle them with the seed (so every shard mixes classes), keep at most
    `max_per_class` of each class (the first in that order), cut into shards."""
    sources = list_sources(cfg)
    ordered = sorted(sources.items, key=lambda item: item.key)
    ids = list(range(len(ordered)))
    random.Random(cfg.seed).shuffle(ids)
    subset = None
    if cfg.max_per_class is not None:
        ids, per_class = _first_per_class(ids, ordered, cfg.max_per_class, len(sources.classes))
        subset = SubsetInfo(max_per_class=cfg.max_per_class, listed=len(ordered), per_class=per_class,
                            rule=SUBSET_RULE)
    n = cfg.samples_per_shard
    chunks = [ids[i:i + n] for i in range(0, len(ids), n)]
    return ShardPlan(
        config=cfg,
        classes=sources.classes,
        class_names=sources.class_names,
        multi_label=sources.multi_label,
        label_frequencies=sources.label_frequencies,
        listing_skipped=sources.skipped,
        shards=[[ordered[i] for i in chunk] for chunk in chunks],
        sample_ids=chunks,
        subset=subset,
    )


def _first_per_class(ids: list[int], ordered: list[SourceItem], limit: int,
                     num_classes: int) -> tuple[list[int], list[int]]:
    """The ids (in their order) of the first `limit` sources of each class, and the count kept per class."""
    taken = [0] * num_classes
    kept = []
    for i in ids:
        label = ordered[i].labels[0]
        if taken[label] < limit:
            taken[label] += 1
            kept.append(i)
    return kept, taken


def _source_stamp(path: str) -> list[int] | None:
    """(size, mtime in ns) of a source file, None when it cannot be read (a counted skip later).

    Part of the fingerprint so that an image edited or replaced under the same name invalidates
    its shard, as make and rsync decide; stat costs a fraction of hashing every source. Copying
    the sources without keeping mtimes only makes a rerun rewrite everything, never go stale.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _fingerprint(plan: ShardPlan, index: int) -> str:
    cfg = plan.config
    content = {
        "samples": [[sid, item.key, list(item.labels), _source_stamp(item.path)]
                    for sid, item in zip(plan.sample_ids[index], plan.shards[index])],
        "resolution": cfg.resolution, "format": cfg.format, "min_size": cfg.min_size,
        "jpeg_quality": cfg.jpeg_quality if cfg.format == "jpg" else None,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _existing_record(out: Location, name: str, fingerprint: str) -> ShardRecord | None:
    """A finished shard is kept only if its sidecar matches the plan and the tar's hash matches."""
    record_path = out / RECORDS_DIR / f"{name}.json"
    tar_path = out / name
    if not (record_path.is_file() and tar_path.is_file()):
        return None
    try:
        record = ShardRecord.model_validate_json(record_path.read_bytes())
    except ValueError:
        return None
    if record.fingerprint != fingerprint or tar_path.sha256() != record.sha256:
        return None
    return record.model_copy(update={"reused": True})


def _remove_stale_temps(out: Location, pattern: str) -> None:
    """Leftovers of killed writers (local disks only: object stores never see a temp file)."""
    if out.is_local:
        for stray in out.local_path().glob(pattern):
            stray.unlink(missing_ok=True)


def write_shard(plan: ShardPlan, index: int) -> ShardRecord:
    """Write shard `index` (or verify and keep a complete one). Bad sources are counted skips."""
    cfg = plan.config
    out = location(cfg.out)
    out.makedirs()
    name = plan.shard_name(index)
    fingerprint = _fingerprint(plan, index)
    existing = _existing_record(out, name, fingerprint)
    if existing is not None:
        return existing
    _remove_stale_temps(out, f".{name}{TMP_MARK}*")
    # Locally the tar is written next to its final name and renamed (atomic); for an object store
    # it is written to local scratch and uploaded, and only becomes part of the set through the
    # sidecar and dataset.json written after it (with its sha256).
    scratch = out.local_path() if out.is_local else Path(tempfile.gettempdir())
    tmp = scratch / f".{name}{TMP_MARK}{os.getpid()}"
    skipped: list[SkippedEntry] = []
    written = 0
    try:
        with open(tmp, "wb") as fh:
            # mtime=0 + fixed user/group: the same plan gives byte-identical tars (comparable hashes).
            sink = wds.TarWriter(fh, mtime=0, encoder=False)
            for sample_id, item in zip(plan.sample_ids[index], plan.shards[index]):
                try:
                    img = load_image(Path(item.path), cfg.resolution, cfg.min_size)
                except SkipSample as err:
                    skipped.append(SkippedEntry(path=item.key, reason=str(err)))
                    continue
                sink.write({
                    "__key__": f"s{sample_id:09d}",
                    cfg.format: encode(img, cfg.format, cfg.jpeg_quality),
                    "cls": " ".join(map(str, item.labels)).encode(),  # all labels, space-separated
                    "src": item.key.encode(),  # source key, for tracing a sample to its original
                })
                written += 1
            sink.close()
            fh.flush()
            os.fsync(fh.fileno())
        digest, size = sha256_file(tmp), tmp.stat().st_size
        if out.is_local:
            os.replace(tmp, out.local_path() / name)  # complete tars only appear under their final name
        else:
            (out / name).upload(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    record = ShardRecord(index=index, name=name, num_samples=written, sha256=digest, size=size,
                         fingerprint=fingerprint, skipped=skipped)
    (out / RECORDS_DIR / f"{name}.json").write_json(record.model_dump(mode="json"))
    return record


def finalize_dataset(plan: ShardPlan, records: list[ShardRecord]) -> DatasetInfo:
    """Check the counts add up, then write dataset.json last and atomically."""
    cfg = plan.config
    by_index = {r.index: r for r in records}
    missing = [i for i in range(len(plan.shards)) if i not in by_index]
    if missing:
        raise RuntimeError(f"shards {missing[:10]} were not written; rerun to resume")
    ordered = [by_index[i] for i in range(len(plan.shards))]
    skipped = list(plan.listing_skipped) + [s for r in ordered for s in r.skipped]
    num_samples = sum(r.num_samples for r in ordered)
    if num_samples + len(skipped) != plan.num_found:
        raise RuntimeError(f"count mismatch: {num_samples} written + {len(skipped)} skipped != {plan.num_found} found")
    info = DatasetInfo(
        source=cfg.source,
        split=cfg.split if cfg.source == "imagenet" else None,
        num_samples=num_samples,
        num_found=plan.num_found,
        num_classes=len(plan.classes),
        resolution=cfg.resolution,
        format=cfg.format,
        multi_label=plan.multi_label,
        classes=plan.classes,
        class_names=plan.class_names,
        shards=[ShardEntry(name=r.name, num_samples=r.num_samples, sha256=r.sha256, size=r.size) for r in ordered],
        skipped=skipped,
        label_frequencies=plan.label_frequencies,
        seed=cfg.seed,
        subset=plan.subset,
    )
    _remove_stale_temps(location(cfg.out), f".shard-*{TMP_MARK}*")
    save_dataset_info(cfg.out, info)
    return info


def shard_dataset(cfg: ShardConfig, workers: int | None = None,
                  progress: Callable[[str], None] | None = None) -> DatasetInfo:
    """Plan, write every shard on a thread pool (PIL releases the GIL while decoding/resizing), finalize."""
    plan = plan_shards(cfg)
    report = progress or log.info
    meter = ProgressLog(total_images=sum(len(s) for s in plan.shards), total_shards=len(plan.shards))
    workers = workers or min(len(plan.shards), os.cpu_count() or 1) or 1
    records = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(write_shard, plan, i) for i in range(len(plan.shards))]
        for future in as_completed(futures):
            record = future.result()
            records.append(record)
            report(meter.update(len(plan.shards[record.index]), record.name, record.reused))
    return finalize_dataset(plan, records)
