"""The run store: the only code that knows a run's layout, and the only code that reads or
writes it. A run lives at a local path or a storage URI (`<store>/<name>`):

    options.json            the resolved ExperimentConfig (the effective one after a rollback's remedy)
    options_history.jsonl   rollbacks and what each changed; rolled_back.jsonl: the stats they abandoned
                            (biggan.runs.history)
    status.json             state (running / finished / collapsed / stopped / failed), iteration, heartbeat
    stats.jsonl             one record per log tick (losses, D outputs, grad norms, singular values,
                            Frobenius norms) and one per rollback (`"event": "rollback"`)
    spectra.png             sigma_0 of every layer over iterations, onset and rollbacks marked (Figure 3)
    checkpoint_<it:08d>/    state.pt + meta.json + manifest.json (see biggan.runs.checkpoints)
    evaluate.json           the checkpoint to evaluate (the newest at or before the last healthy record
                            of a collapsed run, with its onset; else the newest: biggan.runs.evaluation_mark)
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

import logging
import socket
import time
from typing import Any

from biggan.runs import checkpoints as ckpt
from biggan.runs.checkpoints import CheckpointDamaged, CheckpointInfo
from biggan.runs.errors import NoCheckpointBeforeCollapse as NoCheckpointBeforeCollapse  # lived here: re-exported
from biggan.runs.errors import RunNotFound
from biggan.runs.evaluation_mark import EVALUATE_FILE as EVALUATE_FILE  # lived here: re-exported
from biggan.runs.evaluation_mark import STOPPED_BY_RULE as STOPPED_BY_RULE  # lived here: re-exported
from biggan.runs.evaluation_mark import EvaluationChoice, EvaluationMark
from biggan.runs.evaluations import RunEvaluations
from biggan.runs.history import ROLLBACK, OptionsHistory
from biggan.runs.jsonl import JsonLines
from biggan.runs.spectra import write_spectra
from biggan.runs.tensorboard import EVAL, TENSORBOARD_DIR, TRAIN, EventWriter, write_eval_scalars
from biggan.storage import Location, location

OPTIONS_FILE = "options.json"
STATUS_FILE = "status.json"
STATS_FILE = "stats.jsonl"
HISTORY_PLOT = "metrics_history.png"
SAMPLES_DIR = "samples"
RAY_DIR = "ray"
IMPORTED_FILE = "imported.json"
INIT_FILE = "init_from.json"
STATES = ("running", "finished", "collapsed", "stopped", "failed")

log = logging.getLogger("biggan.runs")


class RunStore:
    """One run: its files, checkpoints and marks."""

    def __init__(self, target: str | Location):
        self.location = location(target)  # the run folder
        self.stats = JsonLines(self.location / STATS_FILE)  # training stats (rank 0 writes)
        self.evaluations = RunEvaluations(self.location)  # metric histories, leases, the watch
        self.history = OptionsHistory(self.location)  # rollbacks and the stats they abandoned
        self.mark = EvaluationMark(self.location, self.read_status)  # evaluate.json: the checkpoint to evaluate
        self._said_no_best = False  # the "no FID yet: keeping the newest" line was logged

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

    def load_newest_intact(self, map_location="cpu",
                           before: int | None = None) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """(checkpoint, state) of the newest checkpoint that loads, optionally at or before an
        iteration; a damaged one is skipped with a warning naming it. None when there is none."""
        for info in reversed(ckpt.scan_checkpoints(self.location)):
            if before is not None and info.iteration > before:
                continue
            try:
                return info, ckpt.load_state(info, map_location)
            except CheckpointDamaged as err:
                log.warning("%s; falling back to an older checkpoint", err)
        return None

    def newest_at_or_before(self, iteration: int) -> CheckpointInfo | None:
        """The newest checkpoint (whose files match its manifest) at or before `iteration`."""
        found = [info for info in self.checkpoints() if info.iteration <= iteration]
        return found[-1] if found else None

    def prune_checkpoints(self, keep_last: int, protect: tuple[str, ...] = ()) -> list[str]:
        """Delete all but the newest `keep_last`, the best (lowest FID, once the evaluator has
        scored one), the one marked for evaluation, `protect`, and any checkpoint that is being
        scored or that a watching evaluator has not scored yet."""
        found = self.checkpoints()
        keep = {info.name for info in found[-keep_last:]} | set(protect)
        keep |= self.evaluations.leased() | self.evaluations.pending([info.name for info in found])
        marked = self.marked_checkpoint_name()
        if marked:
            keep.add(marked)
        best = self.best_checkpoint(found)
        if best is not None:
            keep.add(best.name)
        deleted = []
        for info in found:
            if info.name not in keep:
                info.location.delete()
                deleted.append(info.name)
        if deleted and best is None and not self._said_no_best:
            # Once per store object (a training session): the rule, not every checkpoint's prune.
            self._said_no_best = True
            log.info("%s: no FID yet, so no checkpoint is kept as the best: pruning keeps the newest %d "
                     "(and any marked, leased or unscored one); the lowest FID is kept once the evaluator "
                     "scores one", self.name, keep_last)
        return deleted

    def best_checkpoint(self, found: list[CheckpointInfo]) -> CheckpointInfo | None:
        """The lowest FID at the evaluator's setting among `found` (BigGAN-PyTorch's `which_best`
        FID); None before any is scored. No training value stands in for it: G's hinge loss says
        nothing about sample quality, so until an FID exists pruning keeps the newest."""
        best = self.evaluations.best_fid([info.name for info in found])
        return next((info for info in found if info.name == best), None) if best is not None else None

    # ------------------------------------------------------------------ the evaluation mark (evaluation_mark.py)

    def mark_for_evaluation(self, info: CheckpointInfo | None, reason: str, onset: int | None = None,
                            last_healthy: int | None = None) -> None:
        """evaluate.json (EvaluationMark.write: a stopped run's onset and last healthy record too)."""
        self.mark.write(info, reason, onset, last_healthy)

    def evaluation_mark(self) -> dict[str, Any]:
        """evaluate.json as written ({} when there is none or it does not parse)."""
        return self.mark.read()

    def marked_checkpoint_name(self) -> str | None:
        return self.mark.checkpoint_name()

    def evaluation_choice(self) -> EvaluationChoice:
        """The checkpoint to evaluate and the problems met choosing it (see checkpoint_to_evaluate)."""
        return self.mark.choice()

    def checkpoint_to_evaluate(self) -> CheckpointInfo:
        """The checkpoint the run marked, else the newest intact one; never one saved after a
        collapse began (EvaluationMark.checkpoint_to_evaluate: the rule, and its one-line error)."""
        return self.mark.checkpoint_to_evaluate()

    # ------------------------------------------------------------------ rollbacks

    def roll_back(self, number: int, to: CheckpointInfo, collapsed_at: int, onset: int | None, last_healthy: int,
                  signal: str, changed: dict[str, list[Any]], options: dict[str, Any]) -> dict[str, Any]:
        """Rank 0's bookkeeping of rollback `number` to checkpoint `to` (biggan.train.rollback).

        In this order, so that a crash anywhere leaves a run that resumes sensibly: the checkpoints
        after `to` are deleted (a resume must never continue the abandoned stretch), the rollback
        is appended to the options history (a resume re-applies its changes and reseeds from its
        count), options.json becomes the effective config, and the stats after `to` move to
        rolled_back.jsonl, with a rollback record appended to stats.jsonl. Returns the history line."""
        deleted = []
        for info in ckpt.scan_checkpoints(self.location):
            if info.iteration > to.iteration:
                info.location.delete()
                deleted.append(info.name)
        leased = sorted(set(deleted) & self.evaluations.leased())
        if leased:
            log.warning("%s: %s was being scored when the rollback deleted it; its score is kept apart from the "
                        "checkpoint of the same name the run saves again", self.name, ", ".join(leased))
        line = self.history.record_rollback(number, collapsed_at, onset, last_healthy, to.iteration, to.name, signal,
                                            changed, deleted)
        self.write_options(options)
        records = self.stats.read()
        for record in records:
            if int(record.get("iteration", 0)) > to.iteration and record.get("event") != ROLLBACK:
                self.history.rolled_back.append({**record, "rollback": number})
        self.stats.keep(lambda record: int(record.get("iteration", 0)) <= to.iteration)
        self.stats.append({"iteration": to.iteration, **line})
        return line

    def rollbacks(self) -> list[dict[str, Any]]:
        """The run's rollbacks, oldest first (biggan.runs.history)."""
        return self.history.rollbacks()

    def write_spectra(self, onset: int | None = None) -> Location | None:
        """spectra.png from the stats, the abandoned stretches and the rollbacks; never raises
        (a figure must not stop training: a failure is one warning)."""
        try:
            return write_spectra(self.location, [r for r in self.stats.read() if r.get("event") != ROLLBACK],
                                 self.history.rolled_back.read(), self.rollbacks(), onset)
        except Exception as err:  # noqa: BLE001 - any plotting or storage error: warn and train on
            log.warning("%s: could not draw the spectra figure: %s: %s", self.name, type(err).__name__, err)
            return None

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
