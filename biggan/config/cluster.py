"""Config of how the Ray job runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from biggan.config.base import Strict


class ClusterConfig(Strict):
    """Workers, devices and the Ray cluster."""

    num_workers: int = Field(2, ge=0, description="Ray Train workers; 0 = run in this process without Ray")
    use_gpu: bool = Field(False, description="one GPU per worker (NCCL) instead of CPUs (gloo)")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs Ray reserves per worker (also its torch threads)")
    ray_address: str | None = Field(
        None, description="existing Ray cluster to join; None = RAY_ADDRESS, else a new local one on loopback")
    max_failures: int = Field(2, ge=0, description="worker-group restarts from the last checkpoint (Ray FailureConfig)")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="how Ray places the workers on nodes (STRICT_SPREAD: one per node)")
    dashboard_host: str = Field("127.0.0.1", description="interface of a local Ray's dashboard")
