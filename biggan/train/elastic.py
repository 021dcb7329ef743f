"""What the loop does about a worker group that changes size (docs/elastic.md).

Ray Train resizes an elastic run (cluster.num_workers = MIN-MAX) by stopping its worker group and
starting one of the new size, which resumes from the newest checkpoint in the run store like any
restart. The loop makes that visible and cheap:

- `note_world`: a start at another world size than the checkpoint's is a resize event, in
  stats.jsonl (`{"event": "resized", ...}`, which progress readers skip), TensorBoard (the
  `workers` chart, which every stats record feeds) and the log; the micro-batch is recomputed
  (biggan.train.streams.StreamPlan), the global batch, learning rates and BN batch stay.
- `PreemptionWatch`: at every step boundary the workers agree whether one of them was told its
  node is being reclaimed (Ray's preemption info after a drain, or SIGTERM: the context's
  `preemption_notice()`); the first step after a new notice checkpoints, so the restart on the
  nodes left loses at most that step, not up to `checkpoint_every`. Training then goes on until
  the node goes: Ray restarts the group at the deadline or at the node's death, whichever is first.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.runs import RunStore
from biggan.runs.tensorboard import EventWriter
from biggan.train import dist

log = logging.getLogger("biggan.train")

RESIZED, PREEMPTED = "resized", "preemption"  # stats.jsonl event names


def workers_text(world: int, cfg: ExperimentConfig) -> str:
    """`6 of 8 workers` for an elastic run's progress line; empty for a fixed size."""
    return f"{world} of {cfg.cluster.max_workers} workers" if cfg.cluster.elastic else ""


def note_world(store: RunStore, board: EventWriter | None, cfg: ExperimentConfig, data: dict[str, Any],
               start: int, world: int, micro_batch: int) -> dict[str, Any] | None:
    """Rank 0 at a (re)start: the resize event when the checkpoint resumed from (its "data") was written
    by another number of workers; None otherwise (a first start, or the same size)."""
    before = data.get("world_size")
    if before is None or int(before) == world:
        if start == 0 and cfg.cluster.elastic:
            log.info("training on %d of %d workers (range %s), micro-batch %d", world, cfg.cluster.max_workers,
                     cfg.cluster.num_workers, micro_batch)
        return None
    event = {"event": RESIZED, "iteration": start, "from_workers": int(before), "workers": world,
             "max_workers": cfg.cluster.max_workers, "micro_batch": micro_batch,
             "from_micro_batch": data.get("micro_batch"), "time": time.time()}
    store.stats.append(event)
    if board is not None:
        board.log_stats({"iteration": start, "workers": world})
    log.warning("resized from %d to %d workers at iteration %d (of %s; micro-batch %s -> %d, global batch %d "
                "unchanged)", before, world, start, cfg.cluster.num_workers, data.get("micro_batch"), micro_batch,
                cfg.train.batch_size)
    return event


class PreemptionWatch:
    """Whether this step is the first after a new reclaim notice, decided by every rank together."""

    def __init__(self, ctx: Any):
        self.source = getattr(ctx, "preemption_notice", None)  # None: this context is never told (in-process)
        self.seen: set[str] = set()  # notices this rank has checkpointed for

    def due(self, device: torch.device) -> str | None:
        """Called by every rank at every step boundary; the notice (on each rank, its own or another's) when
        the group should checkpoint now, else None."""
        if self.source is None:
            return None
        notice = self.source()
        fresh = notice is not None and notice not in self.seen
        if not dist.all_ranks_any(fresh, device):
            return None
        if notice is not None:
            self.seen.add(notice)
        return notice or "another worker's node is being reclaimed"


def record_preemption(store: RunStore, iteration: int, notice: str, world: int) -> None:
    """Rank 0: the preemption checkpoint as an event in stats.jsonl and the log."""
    store.stats.append({"event": PREEMPTED, "iteration": iteration, "notice": notice, "workers": world,
                        "time": time.time()})
    log.warning("preemption notice (%s): checkpoint at iteration %d; the run goes on until the node goes, then "
                "resumes from here on the workers left", notice, iteration)
