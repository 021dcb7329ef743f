"""What the training loop needs from whoever runs it: who am I, where do I report. `LocalContext`
runs the loop in this process (unit tests, `num_workers=0`); the Ray launcher supplies a context
backed by `ray.train.report`, so the loop itself never imports Ray. Checkpoints and resuming go
through the run store, the same on every backend.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from biggan.train import dist


class TrainContext(Protocol):
    rank: int  # this worker's rank
    world_size: int  # number of workers
    device: torch.device  # where this worker computes

    def report(self, metrics: dict[str, Any]) -> None:
        """Called by EVERY rank at every log tick, the same number of times on each."""

    # Optional: `preemption_notice() -> str | None`, why this worker's node is about to be reclaimed (None:
    # it is not), called by every rank at every step boundary; the loop checkpoints once per new notice
    # (biggan.train.elastic). The Ray launcher's context has it; a context without it is never told.


class LocalContext:
    """Runs in this process; reports are kept in a list."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)  # compute device
        self.rank = dist.rank()
        self.world_size = dist.world_size()
        self.reports: list[dict[str, Any]] = []  # every reported metrics dict, in order

    def report(self, metrics: dict[str, Any]) -> None:
        self.reports.append(dict(metrics))
