"""Run names and lookup in a store: numbered names for new runs (`00007-imagenet128`, as
stylegan2-ada numbers its runs), `--resume NAME|latest|URI`, `--init-from RUN_OR_CHECKPOINT`,
and the listing of `biggan runs`."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from biggan.runs.checkpoints import MANIFEST_FILE, CheckpointDamaged, CheckpointInfo
from biggan.runs.store import OPTIONS_FILE, STATUS_FILE, RunNotFound, RunStore
from biggan.storage import Location, is_uri, location, normalize

_NUMBERED = re.compile(r"^(\d{5,})-")
# A run whose status says "running" but that has not written a heartbeat for this long is
# reported as interrupted (rank 0 writes one at least every minute while it trains).
STALE_AFTER_S = 10 * 60


def run_folders(store: Location) -> list[Location]:
    """Folders of a store that hold a run (an options.json)."""
    return [child for child in store.children() if (child / OPTIONS_FILE).is_file()]


def next_run_name(store: Location, description: str) -> str:
    """`<number>-<description>`, numbered after every run (and run-like folder) in the store."""
    numbers = [int(m.group(1)) for child in store.children() if (m := _NUMBERED.match(child.name))]
    description = re.sub(r"[^A-Za-z0-9._-]+", "-", description).strip("-") or "run"
    return f"{max(numbers, default=-1) + 1:05d}-{description}"


def find_run(store: str | Location, ref: str) -> RunStore:
    """The run a `--resume`/`--run` value names: a run name in `store`, `latest` (the run most
    recently started or resumed), or a path/URI of the run itself."""
    store = location(store)
    if ref == "latest":
        runs = run_folders(store)
        if not runs:
            raise RunNotFound(f"no run in {store.uri} to resume")
        newest = max(runs, key=lambda loc: _started(loc))
        return RunStore(newest).require()
    if is_uri(ref) or "/" in ref or ref.startswith("."):
        return RunStore(ref).require()
    return RunStore(store / ref).require()


def find_checkpoint(store: str | Location, ref: str) -> tuple[RunStore, CheckpointInfo]:
    """(run, checkpoint) for a `--init-from` value: a checkpoint folder's path/URI, or a run (as
    `find_run` takes it) whose checkpoint to evaluate is meant (RunStore.evaluation_choice: of a
    collapsed run, never one saved after the collapse began; none saved before it is
    NoCheckpointBeforeCollapse). A start from weights must be exactly the checkpoint asked for, so
    a marked checkpoint that is damaged or missing is an error here (CheckpointDamaged), never a
    silent fallback to another one."""
    store = location(store)
    if is_uri(ref) or "/" in ref or ref.startswith("."):
        folder = location(normalize(ref))
        if (folder / MANIFEST_FILE).is_file():
            return RunStore(folder.parent).require(), RunStore(folder.parent).checkpoint(folder.name)
    run = find_run(store, ref)
    choice = run.evaluation_choice()  # never a checkpoint saved after a collapse began
    if choice.problems:
        raise CheckpointDamaged(f"{choice.problems[0]}; name one of the run's checkpoint folders to start from another")
    if choice.info is None:
        raise choice.error
    return run, choice.info


def _started(run: Location) -> float:
    info = run.fs.get_file_info((run / OPTIONS_FILE).path)
    return info.mtime.timestamp() if info.mtime is not None else 0.0


@dataclass
class RunSummary:
    name: str
    uri: str
    preset: str | None
    iteration: int | None
    iterations: int | None
    state: str
    last_fid: float | None
    updated: float | None  # status heartbeat (epoch seconds)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)  # biggan.runs.history, oldest first


def summarize(run: RunStore) -> RunSummary:
    options = run.read_options()
    status = run.read_status() or {}
    state = status.get("state", "unknown")
    updated = status.get("updated")
    if state == "running" and updated is not None and time.time() - updated > STALE_AFTER_S:
        state = "interrupted"
    truncation = (run.evaluations.watched() or {}).get("truncation")
    history = [r for r in run.evaluations.history("fid").read()
               if "FID" in r.get("results", {}) and r.get("truncation") == truncation]
    iteration = status.get("iteration")
    if iteration is None:
        found = run.checkpoints()
        iteration = found[-1].iteration if found else None
    return RunSummary(name=run.name, uri=run.uri, preset=options.get("preset"), iteration=iteration,
                      iterations=status.get("iterations") or options.get("train", {}).get("iterations"),
                      state=state, last_fid=history[-1]["results"]["FID"] if history else None,
                      updated=updated, rollbacks=run.rollbacks())


def list_runs(store: str | Location) -> list[RunSummary]:
    return [summarize(RunStore(folder)) for folder in run_folders(location(store))]


__all__ = ["STATUS_FILE", "RunSummary", "find_checkpoint", "find_run", "list_runs", "next_run_name", "run_folders",
           "summarize"]
