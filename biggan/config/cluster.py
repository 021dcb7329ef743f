"""Config of how the Ray job runs, and the arithmetic of splitting a global batch over workers.

`num_workers` is a count or a range `MIN-MAX` (elastic training on nodes that come and go:
docs/elastic.md). The training does not depend on how many workers there are: the global batch
is read from `data_streams` seeded streams that the workers share out, so every size of a range
must divide the number of streams, and the streams the global batch (`split_refusal`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from biggan.config.base import Strict

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_workers(value: Any) -> int | str:
    """A worker count (int, "4") or a range ("2-8", [2, 8]) in its canonical form: an int, or
    "MIN-MAX" with 1 <= MIN < MAX (a range of one size is that size)."""
    if isinstance(value, bool):
        raise ValueError("a worker count or a range MIN-MAX is expected, not true/false")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = (int(v) for v in value)
    elif isinstance(value, int):
        low = high = value
    elif isinstance(value, str) and value.strip().isdigit():
        low = high = int(value)
    elif isinstance(value, str) and (found := _RANGE.match(value)):
        low, high = int(found.group(1)), int(found.group(2))
    else:
        raise ValueError(f"{value!r} is neither a worker count nor a range MIN-MAX (e.g. 2-8)")
    if low < 0:
        raise ValueError("a worker count cannot be negative")
    if low > high:
        raise ValueError(f"range {low}-{high}: MIN is above MAX")
    if low != high and low == 0:
        raise ValueError(f"range {low}-{high}: an elastic run has at least one Ray worker (0 = in this process)")
    return low if low == high else f"{low}-{high}"


def worker_bounds(num_workers: int | str) -> tuple[int, int]:
    """(MIN, MAX) of a canonical `num_workers` (0 stays 0: in this process)."""
    if isinstance(num_workers, int):
        return num_workers, num_workers
    low, high = num_workers.split("-")
    return int(low), int(high)


def worker_sizes(num_workers: int | str) -> list[int]:
    """Every world size the run may train at: MIN..MAX (a run in this process is one worker)."""
    low, high = worker_bounds(num_workers)
    return list(range(max(low, 1), max(high, 1) + 1))


def default_streams(num_workers: int | str) -> int:
    """The fewest data streams every size of the range can share out evenly: their lcm."""
    return math.lcm(*worker_sizes(num_workers))


def split_refusal(batch: int, accumulation: int, num_workers: int | str, streams: int | None) -> str | None:
    """Why `batch` cannot be trained at every size of `num_workers` with the same global batch, cross-replica
    BN batch and data order (None: it can). Each micro-step reads batch / accumulation images, one equal share
    per stream (`streams`, None = default_streams), and each worker holds the same number of streams."""
    sizes = worker_sizes(num_workers)
    if batch % accumulation:
        return f"train.batch_size {batch} is not divisible by train.accumulation {accumulation}"
    per_step = batch // accumulation
    bad = [size for size in sizes if per_step % size]
    if bad:
        can = [d for d in range(1, per_step + 1) if per_step % d == 0]
        shown = ", ".join(map(str, can[:24])) + (", ..." if len(can) > 24 else "")
        if len(sizes) == 1:  # a fixed size: the message of every fixed-size run
            return (f"train.batch_size {batch} is not divisible by cluster.num_workers ({sizes[0]}) x "
                    f"train.accumulation ({accumulation}) = {sizes[0] * accumulation}; worker counts that divide "
                    f"it: {shown}")
        return (f"cluster.num_workers {num_workers}: train.batch_size {batch} / train.accumulation {accumulation} = "
                f"{per_step} images per step cannot be split evenly over {', '.join(map(str, bad))} workers, and "
                f"every size of the range must (the same global batch at any size); worker counts that divide it: "
                f"{shown} (pick a range of those, or a batch size divisible by {math.lcm(*sizes) * accumulation})")
    if streams is None:
        return None
    odd = [size for size in sizes if streams % size]
    if odd:
        return (f"data.streams {streams} cannot be shared out evenly over {', '.join(map(str, odd))} workers "
                f"(cluster.num_workers {num_workers}); worker counts it can: "
                f"{', '.join(str(d) for d in range(1, streams + 1) if streams % d == 0)}")
    if per_step % streams:
        return (f"data.streams {streams} does not divide train.batch_size {batch} / train.accumulation "
                f"{accumulation} = {per_step} images per step (each stream gives an equal share)")
    return None


class ClusterConfig(Strict):
    """Workers, devices and the Ray cluster."""

    num_workers: int | str = Field(
        2, description="Ray Train workers: a count, or a range MIN-MAX (elastic: starts once MIN fit, grows to MAX, "
                       "shrinks and grows back as nodes go and come); 0 = run in this process without Ray")
    use_gpu: bool = Field(False, description="one GPU per worker (NCCL) instead of CPUs (gloo)")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs Ray reserves per worker (also its torch threads)")
    ray_address: str | None = Field(
        None, description="existing Ray cluster to join; None = RAY_ADDRESS, else a new local one on loopback")
    max_failures: int = Field(2, ge=0, description="worker-group restarts from the last checkpoint (Ray FailureConfig)")
    max_preemptions: int | None = Field(
        None, ge=0, description="restarts after node reclaims Ray was told of (spot preemptions), counted apart "
                                "from max_failures; None = no limit")
    resize_check_s: float = Field(
        60.0, gt=0, description="elastic: how often Ray looks for nodes that joined, to grow the worker group (s)")
    start_timeout_s: float = Field(
        10.0, gt=0, description="elastic: how long Ray waits to place a worker group before it counts the nodes again "
                                "(its view of the nodes lags up to 20 s behind a node that went); a fixed size keeps "
                                "Ray's own 60 s")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="how Ray places the workers on nodes (STRICT_SPREAD: one per node)")
    dashboard_host: str = Field("127.0.0.1", description="interface of a local Ray's dashboard")

    @field_validator("num_workers", mode="before")
    @classmethod
    def _count_or_range(cls, value: Any) -> int | str:
        return parse_workers(value)

    @property
    def min_workers(self) -> int:
        return worker_bounds(self.num_workers)[0]

    @property
    def max_workers(self) -> int:
        return worker_bounds(self.num_workers)[1]

    @property
    def elastic(self) -> bool:
        """A range of sizes (Ray's elastic scaling) rather than one."""
        return isinstance(self.num_workers, str)
