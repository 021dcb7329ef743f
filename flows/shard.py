"""Prefect flow `shard-dataset`: plan -> write shards (mapped tasks) -> dataset.json.

Threads by default (PIL releases the GIL while decoding and resizing); with `config.ray_address`
the shard writes run as Ray tasks through prefect-ray's RayTaskRunner, for sets that outgrow one
machine. Every task calls a biggan.data function; no image work happens here.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

from prefect import flow, get_run_logger, tags, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from biggan.config import ShardConfig
from biggan.data.info import DatasetInfo
from biggan.data.progress import ProgressLog
from biggan.data.shard import ShardPlan, ShardRecord, finalize_dataset, plan_shards, write_shard
from biggan.storage import location
from biggan_flows.artifacts import key_value_table, slug
from biggan_flows.labels import run_tags, shard_run_name, short
from biggan_flows.runners import ray_task_options, retry_unless_user_error, task_runner

# The shard writer is itself idempotent (verified tars are kept), so Prefect's input-hash cache
# would add nothing but the cost of hashing a plan of up to millions of sources.


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def plan_shards_task(config: ShardConfig) -> ShardPlan:
    """List and validate the sources, shuffle with the seed, cut into shards."""
    return plan_shards(config)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error)
def write_shard_task(plan: ShardPlan, index: int) -> ShardRecord:
    """Write one tar (or verify and keep a complete one)."""
    return write_shard(plan, index)


@task(cache_policy=NO_CACHE)
def finalize_dataset_task(plan: ShardPlan, records: list[ShardRecord]) -> DatasetInfo:
    """Check counts and write dataset.json last, atomically."""
    return finalize_dataset(plan, records)


@flow(name="write-shards", flow_run_name="write-shards-{config.split}")
def write_shards_flow(config: ShardConfig) -> tuple[ShardPlan, list[ShardRecord]]:
    """Plan, then map the shard writes over this flow's task runner, logging progress as each
    finishes. Only `config` is a flow parameter: Prefect stores flow parameters in its database,
    and a plan can list millions of sources."""
    logger = get_run_logger()
    plan = plan_shards_task(config)
    logger.info("%d sources in %d shards of <= %d (%d skipped while listing)",
                sum(len(s) for s in plan.shards), len(plan.shards), config.samples_per_shard,
                len(plan.listing_skipped))
    futures = write_shard_task.map(unmapped(plan), list(range(len(plan.shards))))
    meter = ProgressLog(total_images=sum(len(s) for s in plan.shards), total_shards=len(plan.shards))
    records = []
    for future in as_completed(futures):
        record = future.result()
        records.append(record)
        logger.info(meter.update(len(plan.shards[record.index]), record.name, record.reused))
    return plan, records


@flow(name="shard-dataset", flow_run_name=shard_run_name)
def shard_dataset(config: ShardConfig) -> dict:
    """Shard an ImageNet-style tree or a JFT-style manifest into WebDataset tars + dataset.json.

    Args:
        config: what to shard (source, root or manifest, split), where to (out) and how (resolution, ...)
    """
    # The task runner is picked per run (threads, or Ray when an address is given), so the
    # mapped writes live in a subflow started with that runner.
    runner = task_runner(config.ray_address, threads=min(8, os.cpu_count() or 1))
    with tags(*run_tags(split=config.split)), ray_task_options() if config.ray_address else nullcontext():
        plan, records = write_shards_flow.with_options(task_runner=runner)(config)
        info = finalize_dataset_task(plan, records)
    reasons: dict[str, int] = {}
    for skipped in info.skipped:
        reason = skipped.reason.split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    summary = {
        "out": str(config.out),
        "num_samples": info.num_samples,
        "num_found": info.num_found,
        "num_skipped": len(info.skipped),
        "num_shards": len(info.shards),
        "num_classes": info.num_classes,
        "resolution": info.resolution,
        "reused_shards": sum(r.reused for r in records),
    }
    # One key per shard set: train and val (or two data sets) never overwrite each other.
    key_value_table(slug(f"shards-{config.split}-{short(str(location(config.out).parent.uri))}"),
                    {"split": config.split, **summary, **{f"skipped: {r}": n for r, n in sorted(reasons.items())}},
                    f"Shard set {config.out} ({config.split})")
    return summary


shard_dataset_flow = shard_dataset  # the name the CLI and tests import
