"""The run store: the only code that knows a run's layout, and the only code that reads or
writes it. A run lives at a local path or a storage URI (`<store>/<name>`):

    options.json            the resolved ExperimentConfig
    status.json             state (running / finished / collapsed / stopped / failed), iteration, heartbeat
    stats.jsonl             one record per log tick (losses, D outputs, grad norms, singular values)
    checkpoint_<it:08d>/    state.pt + meta.json + manifest.json (see biggan.runs.checkpoints)
    evaluate.json           the checkpoint to evaluate (the last before a collapse, else the newest)
    samples/iter_<it>.png   progress sheets of EMA G with standing statistics
    metric-<name>.jsonl     one record per evaluated checkpoint and metric (+ metrics_history.png)
    tensorboard/train/ eval/   TensorBoard event files: stats, sheets; evaluation figures (biggan.runs.tensorboard)
    evaluating/ evaluation.json   leases of checkpoints being scored; the watch of an evaluator
    truncation/ memorization/ quality.json   outputs of the evaluation nodes
    ray/                    Ray Train's own run folder (RunConfig storage)
    imported.json           an imported run: where its weights came from and what the files said
    init_from.json          a run started from another run's weights: the source, what was redrawn

Training and evaluation both stand on this module; neither imports the other.
"""

from __future__ import annotations

import math
import socket
import time
from typing import Any

from biggan.errors import UserError
from biggan.runs import checkpoints as ckpt
from biggan.runs.checkpoints import CheckpointDamaged, CheckpointInfo
from biggan.runs.evaluations import RunEvaluations
from biggan.runs.jsonl import JsonLines
from biggan.runs.tensorboard import EVAL, TENSORBOARD_DIR, TRAIN, EventWriter, write_eval_scalars
from biggan.storage import Location, location

OPTIONS_FILE = "options.json"
STATUS_FILE = "status.json"
STATS_FILE = "stats.jsonl"
EVALUATE_FILE = "evaluate.json"
HISTORY_PLOT = "metrics_history.png"
SAMPLES_DIR = "samples"
RAY_DIR = "ray"
IMPORTED_FILE = "imported.json"
INIT_FILE = "init_from.json"
STATES = ("running", "finished", "collapsed", "stopped", "failed")


class RunNotFound(UserError, FileNotFoundError):
    """No run at a location (one line for the user)."""


class RunStore:
    """One run: its files, checkpoints and marks."""

    def __init__(self, target: str | Location):
        self.location = location(target)  # the run folder
        self.stats = JsonLines(self.location / STATS_FILE)  # training stats (rank 0 writes)
        self.evaluations = RunEvaluations(self.location)  # metric histories, leases, the watch

    @property
    def uri(self) -> str:
        return self.location.uri

    @property
    def name(self) -> str:
        return self.location.name

    def __repr__(self) -> str:
        return f"RunStore({self.uri!r})"

    def exists(self) -> bool:
        return (self.location / OPTIONS_FILE).is_file()

    def require(self) -> RunStore:
        if not self.exists():
            raise RunNotFound(f"no run at {self.uri} (no {OPTIONS_FILE}); `biggan runs` lists the runs of a store")
        return self

    def file(self, *parts: str) -> Location:
        """A file or folder of the run, for the evaluation nodes' outputs (truncation/, ...)."""
        target = self.location
        for part in parts:
            target = target / part
        return target

    # ------------------------------------------------------------------ options and status

    def write_options(self, options: dict[str, Any]) -> None:
        self.location.makedirs()
        (self.location / OPTIONS_FILE).write_json(options, indent=2)

    def read_options(self) -> dict[str, Any]:
        self.require()
        return (self.location / OPTIONS_FILE).read_json()

    def write_status(self, state: str, iteration: int, total: int, reason: str = "", **extra: Any) -> None:
        """status.json: state, progress, why it stopped, a heartbeat, and `extra` facts (e.g. shards left out)."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        (self.location / STATUS_FILE).write_json({
            "state": state, "iteration": int(iteration), "iterations": int(total), "reason": reason,
            "updated": time.time(), "host": socket.gethostname(), **extra})

    def read_status(self) -> dict[str, Any] | None:
        loc = self.location / STATUS_FILE
        try:
            return loc.read_json()
        except (FileNotFoundError, OSError, ValueError):
            return None

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, state: dict[str, Any], metrics: dict[str, Any]) -> CheckpointInfo:
        return ckpt.write_checkpoint(self.location, state, metrics)

    def checkpoints(self) -> list[CheckpointInfo]:
        """Checkpoints whose manifest and sizes agree, oldest first."""
        return ckpt.list_checkpoints(self.location)

    def checkpoint(self, ref: str) -> CheckpointInfo:
        """A checkpoint by folder name (`checkpoint_00001000`), iteration (`1000`) or URI/path."""
        name = ref.rstrip("/").rsplit("/", 1)[-1]
        if name.isdigit():
            name = ckpt.checkpoint_name(int(name))
        info = ckpt.read_checkpoint_info(self.location / name)
        if info is None:
            known = ", ".join(c.name for c in self.checkpoints()) or "none"
            raise RunNotFound(f"no checkpoint {name} in {self.uri} (checkpoints: {known})")
        if info.problem is not None:
            raise CheckpointDamaged(f"{info.problem}: the checkpoint is damaged")
        return info

    def load_state(self, info: CheckpointInfo, map_location="cpu") -> dict[str, Any]:
        return ckpt.load_state(info, map_location)

    def load_newest_intact(self, map_location="cpu", before: int | None = None,
                           warn=print) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """(checkpoint, state) of the newest checkpoint that loads, optionally at or before an
        iteration; a damaged one is skipped with a warning naming it. None when there is none."""
        for info in reversed(ckpt.scan_checkpoints(self.location)):
            if before is not None and info.iteration > before:
                continue
            try:
                return info, ckpt.load_state(info, map_location)
            except CheckpointDamaged as err:
                warn(f"[warning] {err}; falling back to an older checkpoint")
        return None

    def prune_checkpoints(self, keep_last: int, best_metric: str | None, mode: str = "min",
                          protect: tuple[str, ...] = ()) -> list[str]:
        """Delete all but the newest `keep_last`, the best (lowest FID once the evaluation
        history has one, else by `best_metric`), the one marked for evaluation, `protect`, and
        any checkpoint that is being scored or that a watching evaluator has not scored yet."""
        found = self.checkpoints()
        keep = {info.name for info in found[-keep_last:]} | set(protect)
        keep |= self.evaluations.leased() | self.evaluations.pending([info.name for info in found])
        marked = self.marked_checkpoint_name()
        if marked:
            keep.add(marked)
        best = self.best_checkpoint(found, best_metric, mode)
        if best is not None:
            keep.add(best.name)
        deleted = []
        for info in found:
            if info.name not in keep:
                info.location.delete()
                deleted.append(info.name)
        return deleted

    def best_checkpoint(self, found: list[CheckpointInfo], best_metric: str | None,
                        mode: str = "min") -> CheckpointInfo | None:
        """BigGAN-PyTorch's `which_best`: FID once evaluations exist, else a training proxy."""
        best = self.evaluations.best_fid([info.name for info in found])
        if best is not None:
            return next(info for info in found if info.name == best)
        if best_metric is None:
            return None
        candidates = [info for info in found if _finite(info.metrics.get(best_metric))]
        if not candidates:
            return None
        pick = min if mode == "min" else max
        return pick(candidates, key=lambda info: info.metrics[best_metric])

    # ------------------------------------------------------------------ the evaluation mark

    def mark_for_evaluation(self, info: CheckpointInfo | None, reason: str) -> None:
        (self.location / EVALUATE_FILE).write_json(
            {"checkpoint": None if info is None else info.name, "reason": reason}, indent=2)

    def marked_checkpoint_name(self) -> str | None:
        try:
            return (self.location / EVALUATE_FILE).read_json().get("checkpoint")
        except (FileNotFoundError, OSError, ValueError, AttributeError):
            return None

    def checkpoint_to_evaluate(self, warn=print) -> CheckpointInfo:
        """The checkpoint the run marked (the last before a collapse), else the newest; a marked
        checkpoint that is missing or damaged falls back to the newest intact one, with a warning."""
        marked = self.marked_checkpoint_name()
        scanned = ckpt.scan_checkpoints(self.location)
        found = [info for info in scanned if info.problem is None]
        for info in scanned:
            if info.problem is not None and info.name == marked:
                warn(f"[warning] {info.problem}: the checkpoint marked for evaluation is damaged; "
                     f"using the newest intact one")
        if marked:
            match = [info for info in found if info.name == marked]
            if match:
                return match[0]
            if not any(info.name == marked for info in scanned):
                warn(f"[warning] {self.uri}/{marked} (marked for evaluation) is missing; "
                     f"using the newest intact checkpoint")
        if not found:
            raise RunNotFound(f"no intact checkpoint in {self.uri}")
        return found[-1]

    # ------------------------------------------------------------------ outputs

    def sample_sheet(self, iteration: int) -> Location:
        return self.location / SAMPLES_DIR / f"iter_{iteration:08d}.png"

    def sample_sheets(self) -> list[Location]:
        return [loc for loc, _size in (self.location / SAMPLES_DIR).files(recursive=False)
                if loc.name.endswith(".png")]

    def tensorboard_dir(self) -> Location:
        """`tensorboard --logdir` this (or the store) to see the run."""
        return self.location / TENSORBOARD_DIR

    def tensorboard_train(self, resumed_at: int) -> EventWriter:
        """Rank 0's event file for this training session; points of earlier sessions after
        `resumed_at` (the checkpoint it resumed from; 0 for a fresh start) are hidden."""
        return EventWriter(self.tensorboard_dir() / TRAIN, TRAIN, purge_after=resumed_at)

    def tensorboard_eval(self, iteration: int, figures: dict[str, Any], truncation: float | None) -> None:
        """The evaluate node's figures for the checkpoint at `iteration`; never raises."""
        write_eval_scalars(self.tensorboard_dir() / EVAL, iteration, figures, truncation)

    def ray_storage(self) -> tuple[Any, str]:
        """(pyarrow filesystem, path) for Ray Train's RunConfig: Ray's files live in <run>/ray."""
        return self.location.fs, self.location.path


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
