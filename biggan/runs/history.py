"""A run's options history and its rollbacks (biggan.train.rollback).

    options.json            the effective config: rewritten when a rollback applies a remedy
    options_history.jsonl   append-only: one line per rollback (where it collapsed and why,
                            where it went back to, the keys the remedy changed: {key: [before, after]})
    rolled_back.jsonl       the stats records of abandoned stretches, each with its rollback's number

A resume continues with the remedies: the loop re-applies the recorded changes to the config it
is given wherever that still holds a key's value from before the change (a Ray restart hands the
workers the launch config; `biggan train --resume` starts from options.json, which already has
them; a key the user set on resume keeps the user's value). The number of rollbacks recorded is
also what the loop reseeds its data and latent streams with, so a resumed run replays exactly.
"""

from __future__ import annotations

import time
from typing import Any

from biggan.runs.jsonl import JsonLines
from biggan.storage import Location

HISTORY_FILE = "options_history.jsonl"
ROLLED_BACK_FILE = "rolled_back.jsonl"
ROLLBACK = "rollback"  # the `event` of a rollback line (and of its record in stats.jsonl)


class OptionsHistory:
    """The append-only history of a run's options (rank 0 writes)."""

    def __init__(self, run: Location):
        self.lines = JsonLines(run / HISTORY_FILE)  # one JSON object per event
        self.rolled_back = JsonLines(run / ROLLED_BACK_FILE)  # abandoned stats records

    def rollbacks(self) -> list[dict[str, Any]]:
        """The rollbacks of the run, oldest first."""
        return [line for line in self.lines.read() if line.get("event") == ROLLBACK]

    def record_rollback(self, number: int, collapsed_at: int, onset: int | None, last_healthy: int,
                        to_iteration: int, checkpoint: str, signal: str, changed: dict[str, list[Any]],
                        deleted: list[str]) -> dict[str, Any]:
        """Append rollback `number` (1-based); returns the line written."""
        line = {"event": ROLLBACK, "rollback": int(number), "collapsed_at": int(collapsed_at),
                "onset": None if onset is None else int(onset), "last_healthy": int(last_healthy),
                "to_iteration": int(to_iteration), "checkpoint": checkpoint, "signal": signal, "changed": changed,
                "deleted_checkpoints": deleted, "time": time.time()}
        self.lines.append(line)
        return line


def rollback_line(event: dict[str, Any]) -> str:
    """One human line for a rollback (logs, the Prefect artifact, `biggan runs`)."""
    changed = ", ".join(f"{key} {before} -> {after}" for key, (before, after) in event.get("changed", {}).items())
    onset = event.get("onset")
    since = f", onset {onset}" if onset is not None and onset != event["collapsed_at"] else ""
    return (f"rollback {event['rollback']} at iteration {event['collapsed_at']} ({event.get('signal', '')}{since}): "
            f"back to iteration {event['to_iteration']} ({event.get('checkpoint')}), "
            + (f"changed {changed}" if changed else "no remedy left: new data and latent streams only"))
