"""What the training loop needs from whoever runs it: who am I, where do I report, where
do I resume from. `LocalContext` runs the loop in this process (unit tests, `num_workers=0`);
the Ray launcher supplies a context backed by `ray.train.report` / `ray.train.get_checkpoint`
so the loop itself never imports Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from biggan.train import checkpoint as ckpt
from biggan.train import dist


class TrainContext(Protocol):
    rank: int  # this worker's rank
    world_size: int  # number of workers
    device: torch.device  # where this worker computes

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """Called by EVERY rank the same number of times; only rank 0 passes a checkpoint."""

    def latest_checkpoint(self) -> Path | None:
        """A readable checkpoint directory to resume from, or None for a fresh start."""


class LocalContext:
    """Runs in this process; checkpoints are moved into the run directory by name."""

    def __init__(self, run_dir: Path, device: torch.device | str = "cpu"):
        self.run_dir = Path(run_dir)  # checkpoints land in here as checkpoint_<iteration>
        self.device = torch.device(device)  # compute device
        self.rank = dist.rank()
        self.world_size = dist.world_size()
        self.reports: list[dict[str, Any]] = []  # every reported metrics dict, in order

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None and self.rank == 0:
            iteration = int(ckpt.read_meta(checkpoint_dir)["iteration"])
            ckpt.install_directory(Path(checkpoint_dir), self.run_dir / ckpt.checkpoint_name(iteration))

    def latest_checkpoint(self) -> Path | None:
        found = ckpt.list_checkpoints(self.run_dir)
        return found[-1].path if found else None
