"""Follow a training run from the flow side while Ray trains it.

The training loop runs in Ray workers and never imports Prefect; it writes the run store
(stats.jsonl at every log tick, checkpoint_<it>/ and samples/iter_<it>.png at every checkpoint).
A thread of the train task reads those files and turns them into Prefect's own signals:

- a progress artifact (`training-<run>`, iteration / iterations) and a log line with the latest
  losses at every new stats record;
- an event `biggan.checkpoint.saved` per new checkpoint (resource `biggan.run.<run name>`,
  payload: the run's location, the checkpoint, its iteration), which the `evaluate-biggan`
  deployment's trigger turns into an evaluation (prefect.yaml);
- a markdown artifact with each new sample sheet inline (`samples-<run>`);
- an event `biggan.run.rolled_back` per rollback (train.collapse.action=rollback; payload: where
  it collapsed and why, where it went back to, what the remedy changed), a warning line, and the
  run's stability artifact (`stability-<run>`): one line per rollback and the spectra figure
  (spectra.png, sigma_0 of every layer over iterations), republished when either changes;
- an event `biggan.run.resized` per resize of an elastic run (cluster.num_workers MIN-MAX: Ray
  restarted its worker group at another size; payload: iteration, from/to workers, micro-batch)
  and `biggan.run.preempted` per preemption checkpoint (a node about to be reclaimed), a line
  each, and the run's workers artifact (`workers-<run>`): a table of every resize and preemption.
  An elastic run's progress says how many workers it is on (`iteration 12/150 on 2 of 3 workers`).

The thread runs in a copy of the task's context: Prefect 3.8.8 finds the run context (logger,
artifact and event attribution) through context variables, which a bare thread would not see.

A failing poll never stops training, but it is not shrugged off either: a file caught mid-write
fails one poll and the next one works, while a broken store or event client fails every poll,
and then "evaluation follows training" has silently stopped. So failures in a row are counted:
a warning for the first ones, an error from ESCALATE_AFTER on, and after MAX_FAILURES (a minute
of polls) the watcher stops and keeps why in `failure`, which the train task returns and the
flow run's state shows (flows/train.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.events import emit_event

from biggan.runs import RunStore
from biggan.runs.history import rollback_line
from biggan.runs.spectra import SPECTRA_FILE
from biggan_flows.artifacts import publish_sample_sheet, publish_stability, slug

CHECKPOINT_EVENT = "biggan.checkpoint.saved"
ROLLBACK_EVENT = "biggan.run.rolled_back"
RESIZE_EVENT = "biggan.run.resized"
PREEMPTION_EVENT = "biggan.run.preempted"
WORKER_EVENTS = {"resized": RESIZE_EVENT, "preemption": PREEMPTION_EVENT}  # stats.jsonl event -> Prefect event
POLL_S = 5.0  # a stat of stats.jsonl and a checkpoint listing per poll: cheap on any store
MAX_LINES_PER_POLL = 20
ESCALATE_AFTER = 3  # failed polls in a row from which each is logged as an error, not a warning
MAX_FAILURES = 12  # failed polls in a row (a minute at POLL_S) after which the watcher gives up


def run_resource(run_name: str) -> dict[str, str]:
    """The Prefect resource of a training run: what the evaluation trigger matches on."""
    return {"prefect.resource.id": f"biggan.run.{run_name}", "prefect.resource.name": run_name}


def losses_line(record: dict[str, Any], total: int, elastic: bool = False) -> str:
    """The latest losses; an elastic run's line says how many workers it is on."""
    def num(key: str) -> str:
        value = record.get(key)
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    workers = (f" on {record['workers']} of {record.get('max_workers', '?')} workers"
               if elastic and "workers" in record else "")
    return (f"iteration {record.get('iteration')}/{total}{workers}: D {num('loss/D')} (real {num('loss/D_real')}, "
            f"fake {num('loss/D_fake')}), G {num('loss/G')}, {num('images_per_s')} img/s")


def worker_event_line(event: dict[str, Any]) -> str:
    """One line for a resize or a preemption checkpoint."""
    if event.get("event") == "resized":
        return (f"resized from {event.get('from_workers')} to {event.get('workers')} of {event.get('max_workers')} "
                f"workers at iteration {event.get('iteration')} (micro-batch {event.get('from_micro_batch')} -> "
                f"{event.get('micro_batch')}; the global batch unchanged)")
    return (f"preemption checkpoint at iteration {event.get('iteration')} on {event.get('workers')} workers: "
            f"{event.get('notice')}")


class RunWatcher:
    """Polls one run store; publishes progress, losses, checkpoint events and sample sheets."""

    def __init__(self, run_uri: str, run_name: str, total: int, logger: logging.Logger | logging.LoggerAdapter,
                 poll_s: float | None = None, elastic: bool = False):
        self.store = RunStore(run_uri)  # the run being trained
        self.run_name = run_name  # its name in the store (resource id, artifact keys)
        self.total = total  # iterations it trains to
        self.logger = logger  # the train task's run logger
        self.poll_s = POLL_S if poll_s is None else poll_s  # seconds between polls
        self.failures = 0  # failed polls in a row
        self.failure: str | None = None  # why the watcher stopped publishing; None while it works
        self._stats_size = -1  # stats.jsonl size at the last read: re-read only when it grew
        self._last_iteration = 0  # newest stats record published
        self._checkpoints: set[str] = set(c.name for c in self.store.checkpoints()) if self.store.exists() else set()
        self._sheets: set[str] = set(loc.name for loc in self.store.sample_sheets()) if self.store.exists() else set()
        self._rollbacks = len(self.store.rollbacks()) if self.store.exists() else 0  # rollbacks published
        self.elastic = elastic  # cluster.num_workers is a range: say the worker count in progress lines
        self._worker_events = {_event_key(r) for r in self._stats_records() if r.get("event") in WORKER_EVENTS}
        self.worker_events: list[dict[str, Any]] = []  # payloads of the resize / preemption events emitted
        self._spectra: tuple[int, int] | None = None  # spectra.png (size, mtime) last published
        self._progress_id = None
        self._stop = threading.Event()
        self.events: list[dict[str, Any]] = []  # payloads of the events emitted, for the flow's result
        self.rollback_events: list[dict[str, Any]] = []  # payloads of the rollback events emitted

    # ------------------------------------------------------------------ one poll

    def poll(self) -> None:
        self._poll_rollbacks()  # first: a rollback sends the stats back to an earlier iteration
        self._poll_stats()
        self._poll_checkpoints()
        self._poll_sheets()
        self._poll_spectra()

    def _poll_rollbacks(self) -> None:
        if not self.store.exists():
            return
        events = self.store.rollbacks()
        for event in events[self._rollbacks:]:
            payload = {"run": self.store.uri, "run_name": self.run_name,
                       **{k: event.get(k) for k in ("rollback", "collapsed_at", "onset", "last_healthy",
                                                    "to_iteration", "checkpoint", "signal", "changed")}}
            emit_event(event=ROLLBACK_EVENT, resource=run_resource(self.run_name), payload=payload)
            self.rollback_events.append(payload)
            self.logger.warning("%s: event %s emitted", rollback_line(event), ROLLBACK_EVENT)
            # The run continues from there: its next records are new even below the old maximum.
            self._last_iteration = min(self._last_iteration, int(event["to_iteration"]))
            self._stats_size = -1
        if len(events) > self._rollbacks:
            self._rollbacks = len(events)
            self._spectra = None  # republish the artifact with the new line

    def _poll_spectra(self) -> None:
        if not self.store.exists():
            return
        figure = self.store.file(SPECTRA_FILE)
        try:
            info = figure.fs.get_file_info(figure.path)
        except OSError:
            return
        if info.size is None or info.size <= 0:
            return
        seen = (int(info.size), int(info.mtime_ns or 0))
        if seen == self._spectra:
            return
        self._spectra = seen
        publish_stability(self.run_name, figure.uri, [rollback_line(e) for e in self.store.rollbacks()])

    def _poll_stats(self) -> None:
        try:
            size = self.store.stats.loc.size()
        except (FileNotFoundError, OSError):
            return
        if size == self._stats_size:
            return
        self._stats_size = size
        records = self.store.stats.read()
        self._publish_worker_events(records)
        new = [r for r in records
               if int(r.get("iteration", 0)) > self._last_iteration and "event" not in r]  # not an event's record
        if not new:
            return
        # One line per log tick, as the workers print them; a poll that finds a backlog (a
        # resumed run's old records) logs its newest ones only.
        for record in new[-MAX_LINES_PER_POLL:]:
            self.logger.info(losses_line(record, self.total, self.elastic))
        latest = new[-1]
        self._last_iteration = int(latest["iteration"])
        self.progress(100.0 * self._last_iteration / max(self.total, 1), losses_line(latest, self.total, self.elastic))

    def _stats_records(self) -> list[dict[str, Any]]:
        try:
            return self.store.stats.read() if self.store.exists() else []
        except (FileNotFoundError, OSError):
            return []

    def _publish_worker_events(self, records: list[dict[str, Any]]) -> None:
        """Resizes and preemption checkpoints not published yet: a Prefect event, a line, the workers table."""
        fresh = [r for r in records if r.get("event") in WORKER_EVENTS and _event_key(r) not in self._worker_events]
        for record in fresh:
            payload = {"run": self.store.uri, "run_name": self.run_name,
                       **{k: v for k, v in record.items() if k != "event"}}
            emit_event(event=WORKER_EVENTS[record["event"]], resource=run_resource(self.run_name), payload=payload)
            self._worker_events.add(_event_key(record))
            self.worker_events.append(payload)
            self.logger.warning("%s: event %s emitted", worker_event_line(record), WORKER_EVENTS[record["event"]])
        if fresh:
            # A restart drops records after its checkpoint, but an event stays once published: the table is
            # built from everything published in this watch, the history of the session.
            create_table_artifact(
                key=f"workers-{slug(self.run_name)}",
                description=f"Workers of {self.run_name}: every resize and preemption checkpoint",
                table=[{"iteration": p.get("iteration"), "what": worker_event_line({"event": e, **p})}
                       for e, p in ((_event_name(p), p) for p in self.worker_events)])

    def _poll_checkpoints(self) -> None:
        if not self.store.exists():
            return
        for info in self.store.checkpoints():
            if info.name in self._checkpoints:
                continue
            self._checkpoints.add(info.name)
            payload = {"run": self.store.uri, "run_name": self.run_name, "checkpoint": info.name,
                       "iteration": info.iteration}
            emit_event(event=CHECKPOINT_EVENT, resource=run_resource(self.run_name), payload=payload)
            self.events.append(payload)
            self.logger.info("checkpoint %s saved: event %s emitted", info.name, CHECKPOINT_EVENT)

    def _poll_sheets(self) -> None:
        if not self.store.exists():
            return
        for loc in self.store.sample_sheets():
            if loc.name in self._sheets:
                continue
            self._sheets.add(loc.name)
            digits = "".join(c for c in loc.name if c.isdigit())
            publish_sample_sheet(self.run_name, loc.uri, int(digits) if digits else None)

    def progress(self, percent: float, description: str) -> None:
        percent = min(100.0, max(0.0, percent))
        if self._progress_id is None:
            self._progress_id = create_progress_artifact(percent, key=f"training-{slug(self.run_name)}",
                                                         description=f"Training of {self.run_name}: {description}")
        else:
            update_progress_artifact(self._progress_id, percent,
                                     description=f"Training of {self.run_name}: {description}")

    # ------------------------------------------------------------------ the thread

    def guarded_poll(self, last: bool = False) -> bool:
        """One poll that never raises (a watcher must never fail training); False once the
        watcher has given up: after MAX_FAILURES failed polls in a row, or when the `last` poll,
        the one after training, fails (nothing would publish what it missed)."""
        try:
            self.poll()
        except Exception as err:  # noqa: BLE001 - counted, escalated and surfaced below, never raised
            self.failures += 1
            what = f"{type(err).__name__}: {err}"
            if self.failures >= MAX_FAILURES or last:
                self.failure = (f"the run watcher of {self.run_name} gave up after {self.failures} failed "
                                f"poll{'s' * (self.failures > 1)} in a row ({what}): checkpoint events (which "
                                f"start evaluations), progress and sample sheets stopped being published")
                self.logger.error("%s", self.failure)
                return False
            level = logging.ERROR if self.failures >= ESCALATE_AFTER else logging.WARNING
            self.logger.log(level, "run watcher: poll failed (%d in a row; it gives up at %d): %s",
                            self.failures, MAX_FAILURES, what)
            return True
        if self.failures:
            self.logger.info("run watcher: polling works again after %d failed polls", self.failures)
        self.failures = 0
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            if not self.guarded_poll():
                return

    @contextlib.contextmanager
    def running(self) -> Iterator[RunWatcher]:
        """Poll in a thread while the body trains; a last poll after it, in this thread."""
        self.progress(100.0 * self._last_iteration / max(self.total, 1), "starting")
        thread = threading.Thread(target=contextvars.copy_context().run, args=(self._loop,),
                                  name=f"watch-{self.run_name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.guarded_poll(last=True)  # never raises: a training error is never hidden behind a watcher one


def _event_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return record.get("event"), record.get("iteration"), record.get("time")


def _event_name(payload: dict[str, Any]) -> str:
    return "resized" if "from_workers" in payload else "preemption"
