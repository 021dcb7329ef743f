"""Where a run stands against collapse, and how it goes back: the health kept in checkpoints, the
choice of a checkpoint every rank loads (a resume, a rollback), and the rollback itself.

Recover instead of stop (`train.collapse.action=rollback`): when the collapse or dead-D rule
fires, every rank goes back to the newest intact checkpoint at or before the last healthy record
(the one Section 4 would score), restores weights, optimizers, EMA and the collapse monitor from
it, applies the next entry of `train.collapse.remedies` (dotted overrides, checked before the run
started: biggan.experiment.check_remedies), restarts its data and latent streams at that
checkpoint with seeds that also count the rollbacks, and continues; up to
`train.collapse.max_rollbacks`, after which the next collapse stops the run as `stop` does.
Rank 0 records the rollback (biggan.runs.store.RunStore.roll_back: stats.jsonl, the options
history, options.json) and TensorBoard, and logs it. A run resumed later, or restarted by Ray,
re-applies the recorded changes (`effective_config`) and reseeds from the same count, so a resume
after a rollback is exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from biggan.config import ExperimentConfig, apply_overrides
from biggan.experiment import apply_remedy, flat_config
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.history import rollback_line
from biggan.runs.tensorboard import EventWriter
from biggan.train import dist
from biggan.train.state import TrainingState
from biggan.train.step import TrainStep

log = logging.getLogger("biggan.train")


@dataclass
class Health:
    """Where the run stands against the collapse and dead-D rules (saved in every checkpoint)."""

    last_healthy: int  # iteration of the last record that tripped neither rule (the start if none yet)
    onset: int | None = None  # iteration of the first tripping record since then; None while healthy

    def state_dict(self) -> dict[str, Any]:
        return {"last_healthy": self.last_healthy, "onset": self.onset}

    @classmethod
    def resumed(cls, blob: dict[str, Any], start: int) -> Health:
        """From a checkpoint (one written before this was saved: healthy at its iteration)."""
        saved = blob.get("health") or {}
        return cls(int(saved.get("last_healthy", start)), saved.get("onset"))


def pick_checkpoint(store: RunStore, device: torch.device,
                    before: int | None = None) -> tuple[CheckpointInfo, dict[str, Any]] | None:
    """The newest intact checkpoint (at or before `before`), loaded on every rank; None when none.

    Rank 0 picks it (skipping damaged ones, with a warning naming each) and every rank loads the
    one it picked, so ranks can never continue from different iterations."""
    chosen, found = -1, None
    if dist.rank() == 0:
        found = store.load_newest_intact(map_location=device, before=before)
        chosen = found[0].iteration if found is not None else -1
    chosen = dist.broadcast_int(chosen, device)
    if chosen < 0:
        return None
    if found is None:
        info = [c for c in store.checkpoints() if c.iteration == chosen][0]
        found = info, store.load_state(info, map_location=device)
    return found


def effective_config(cfg: ExperimentConfig, rollbacks: list[dict[str, Any]]) -> ExperimentConfig:
    """`cfg` with the changes of the run's recorded rollbacks, key by key where `cfg` still has
    the value from before the change (a key set otherwise, e.g. on resume, keeps its value)."""
    for event in rollbacks:
        flat = flat_config(cfg)
        updates = {key: after for key, (before, after) in event.get("changed", {}).items() if flat.get(key) == before}
        if updates:
            cfg = apply_overrides(cfg, updates)  # type: ignore[assignment]
    return cfg


@dataclass
class Rollback:
    cfg: ExperimentConfig  # the config from here on (the remedy applied)
    start: int  # the iteration the run continues from
    health: Health  # as saved in that checkpoint
    event: dict[str, Any]  # the rollback as recorded (rank 0; {} on other ranks)


def roll_back(store: RunStore, state: TrainingState, step: TrainStep, cfg: ExperimentConfig, health: Health,
              iteration: int, number: int, signal: str, device: torch.device,
              board: EventWriter | None) -> Rollback | None:
    """Rollback `number` (1-based) of a run that collapsed at `iteration` for `signal`, on every
    rank; None when no checkpoint was saved at or before the last healthy record."""
    found = pick_checkpoint(store, device, before=health.last_healthy)
    if found is None:
        return None
    info, blob = found
    remedies = cfg.train.collapse.remedies
    new_cfg, changed = apply_remedy(cfg, remedies[number - 1] if number <= len(remedies) else {})
    start = state.load_state_dict(blob, new_cfg)  # weights, optimizers (new settings), EMA, monitor
    state.ema.decay = new_cfg.train.ema_decay
    step.configure(new_cfg.train.model_copy(update={"precision": state.precision}))
    event: dict[str, Any] = {}
    if dist.rank() == 0:
        event = store.roll_back(number, info, iteration, health.onset, health.last_healthy, signal, changed,
                                new_cfg.model_dump(mode="json"))
        if board is not None:
            board.log_rollback(event)
        log.warning("%s (%d of at most %d)", rollback_line(event), number, cfg.train.collapse.max_rollbacks)
    return Rollback(new_cfg, start, Health.resumed(blob, start), event)
