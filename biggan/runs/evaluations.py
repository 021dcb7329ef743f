"""A run's evaluation records: one JSON-lines history per metric (`metric-<name>.jsonl`, as
stylegan2-ada writes them), the leases of checkpoints being scored, and the watch an evaluator
keeps on a run, so pruning never deletes a checkpoint that is pending or under evaluation.

A rollback (biggan.runs.history) deletes the checkpoints after the one it goes back to, and the
run later saves new ones under the same names. Records of a name taken before its checkpoint was
deleted belong to the abandoned weights: they stay in the files (they were measured) but count
for nothing here, so the new checkpoint of that name is scored in its turn."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from biggan.runs.history import OptionsHistory
from biggan.runs.jsonl import JsonLines
from biggan.storage import Location

METRIC_FILE = "metric-{name}.jsonl"
LEASES_DIR = "evaluating"
WATCH_FILE = "evaluation.json"
# A lease older than this belongs to an evaluator that died: it no longer protects its checkpoint.
LEASE_TTL_S = 6 * 3600


class RunEvaluations:
    def __init__(self, run: Location):
        self.run = run  # the run folder

    def history(self, metric: str) -> JsonLines:
        return JsonLines(self.run / METRIC_FILE.format(name=metric))

    def current(self, metric: str) -> list[dict[str, Any]]:
        """The metric's records, less those of checkpoints a rollback deleted after they were scored."""
        retired: dict[str, float] = {}
        for event in OptionsHistory(self.run).rollbacks():
            for name in event.get("deleted_checkpoints", []):
                retired[name] = max(retired.get(name, 0.0), float(event.get("time", 0.0)))
        return [r for r in self.history(metric).read()
                if r.get("checkpoint") not in retired or float(r.get("timestamp", 0.0)) > retired[r["checkpoint"]]]

    def metrics_recorded(self) -> list[str]:
        names = [loc.name for loc, _size in self.run.files(recursive=False)]
        return sorted(n.removeprefix("metric-").removesuffix(".jsonl") for n in names
                      if n.startswith("metric-") and n.endswith(".jsonl"))

    def results(self, metrics: list[str] | None = None, truncation: float | None = None) -> dict[str, dict[str, Any]]:
        """checkpoint name -> {"iteration", "metrics": {figure: value}} merged over `metrics`, from
        the records taken at `truncation` (the run's evaluation setting)."""
        merged: dict[str, dict[str, Any]] = {}
        for metric in metrics if metrics is not None else self.metrics_recorded():
            for record in self.current(metric):
                if record.get("truncation") != truncation:
                    continue
                entry = merged.setdefault(record["checkpoint"], {"iteration": record["iteration"], "metrics": {}})
                entry["metrics"].update(record.get("results", {}))
        return merged

    def scored(self, metric: str, truncation: float | None = None) -> set[str]:
        return {record["checkpoint"] for record in self.current(metric)
                if record.get("truncation") == truncation}

    def record(self, metric: str, checkpoint: str, iteration: int, results: dict[str, float],
               meta: dict[str, Any]) -> None:
        self.history(metric).append({"checkpoint": checkpoint, "iteration": iteration, "results": results,
                                     **meta, "timestamp": time.time()})

    # ------------------------------------------------------------------ leases and the watch

    def lease(self, checkpoint: str) -> _Lease:
        """`with evaluations.lease(name):` marks a checkpoint as being scored."""
        return _Lease(self.run / LEASES_DIR / f"{checkpoint}.json")

    def leased(self) -> set[str]:
        now = time.time()
        out = set()
        for loc, _size in (self.run / LEASES_DIR).files(recursive=False):
            try:
                if now - float(loc.read_json()["started"]) < LEASE_TTL_S:
                    out.add(loc.name.removesuffix(".json"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def watch(self, metrics: list[str], truncation: float | None) -> None:
        """An evaluator follows this run: unscored checkpoints are kept until it has scored them."""
        (self.run / WATCH_FILE).write_json({"metrics": list(metrics), "truncation": truncation,
                                            "updated": time.time()})

    def watched(self) -> dict[str, Any] | None:
        try:
            return (self.run / WATCH_FILE).read_json()
        except (FileNotFoundError, OSError, ValueError):
            return None

    def pending(self, checkpoints: list[str]) -> set[str]:
        """Checkpoints an evaluator watching the run has not scored with every metric it computes."""
        watch = self.watched()
        if not watch:
            return set()
        missing: set[str] = set()
        for metric in watch.get("metrics", []):
            missing |= set(checkpoints) - self.scored(metric, watch.get("truncation"))
        return missing

    def best_fid(self, checkpoints: list[str]) -> str | None:
        """The checkpoint with the lowest FID at the evaluator's setting (BigGAN-PyTorch's which_best FID)."""
        truncation = (self.watched() or {}).get("truncation")
        scored = [(r["results"]["FID"], r["checkpoint"]) for r in self.current("fid")
                  if r.get("truncation") == truncation and r["checkpoint"] in checkpoints
                  and isinstance(r.get("results", {}).get("FID"), (int, float))
                  and math.isfinite(r["results"]["FID"])]
        return min(scored)[1] if scored else None


class _Lease:
    def __init__(self, loc: Location):
        self.loc = loc

    def __enter__(self) -> _Lease:
        self.loc.write_json({"started": time.time(), "host": socket.gethostname(), "pid": os.getpid()})
        return self

    def __exit__(self, *exc) -> None:
        self.loc.delete()


def iter_figures(results: dict[str, dict[str, Any]]) -> Iterator[tuple[str, int, dict[str, float]]]:
    for name, entry in sorted(results.items(), key=lambda item: item[1]["iteration"]):
        yield name, entry["iteration"], entry["metrics"]
