"""evaluate.json: the checkpoint a run hands to evaluation, and how it is chosen.

Training writes the mark when it stops (biggan.train.loop): the newest checkpoint, or for a run the
collapse or dead-D rule stopped, the newest at or before its last healthy record, with the collapse
onset (Section 4 scores "the last checkpoint saved before" the collapse). Reading it back never
hands evaluation a checkpoint saved after that record, also when the marked one is damaged or
missing. RunStore (biggan.runs.store) owns one of these per run and exposes it as its
`mark_for_evaluation` / `checkpoint_to_evaluate` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from biggan.runs import checkpoints as ckpt
from biggan.runs.checkpoints import CheckpointInfo
from biggan.runs.errors import NoCheckpointBeforeCollapse, RunNotFound
from biggan.storage import Location

EVALUATE_FILE = "evaluate.json"
STOPPED_BY_RULE = ("collapsed", "stopped")  # states the collapse and dead-D rules end a run in

log = logging.getLogger("biggan.runs")


@dataclass
class EvaluationChoice:
    """The checkpoint a run hands to evaluation, and what was wrong on the way to it."""

    info: CheckpointInfo | None  # the checkpoint to evaluate; None: there is none (`error` says why)
    problems: list[str] = field(default_factory=list)  # the marked checkpoint damaged or missing (one line each)
    error: RunNotFound | None = None  # why there is none


class EvaluationMark:
    """One run's evaluate.json and the choice it makes."""

    def __init__(self, run: Location, read_status: Callable[[], dict[str, Any] | None]):
        self.location = run  # the run folder
        self.read_status = read_status  # the run's status.json (None: none): a mark from before onsets needs its state

    @property
    def uri(self) -> str:
        return self.location.uri

    def write(self, info: CheckpointInfo | None, reason: str, onset: int | None = None,
              last_healthy: int | None = None) -> None:
        """evaluate.json. A run the collapse or dead-D rule stopped also records `onset` (the
        iteration of the first tripping record of the streak that stopped it) and `last_healthy`
        (the last record that tripped nothing): no checkpoint after `last_healthy` is ever evaluated."""
        mark: dict[str, Any] = {"checkpoint": None if info is None else info.name, "reason": reason}
        if onset is not None:
            mark.update({"collapse_onset": int(onset),
                         "last_healthy": None if last_healthy is None else int(last_healthy)})
        (self.location / EVALUATE_FILE).write_json(mark, indent=2)

    def read(self) -> dict[str, Any]:
        """evaluate.json as written ({} when there is none or it does not parse)."""
        try:
            mark = (self.location / EVALUATE_FILE).read_json()
        except (FileNotFoundError, OSError, ValueError):
            return {}
        return mark if isinstance(mark, dict) else {}

    def checkpoint_name(self) -> str | None:
        return self.read().get("checkpoint")

    def choice(self) -> EvaluationChoice:
        """The checkpoint to evaluate and the problems met choosing it (see checkpoint_to_evaluate)."""
        mark = self.read()
        marked = mark.get("checkpoint")
        scanned = ckpt.scan_checkpoints(self.location)
        bound = self._healthy_bound(mark, scanned)
        found = [info for info in scanned if info.problem is None and (bound is None or info.iteration <= bound)]
        problems = []
        if marked:
            match = [info for info in found if info.name == marked]
            if match:
                return EvaluationChoice(match[0])
            damaged = [info for info in scanned if info.name == marked]
            problems.append(f"{damaged[0].problem}: the checkpoint marked for evaluation is damaged" if damaged
                            else f"{self.uri}/{marked} (marked for evaluation) is missing")
        if found:
            return EvaluationChoice(found[-1], problems)
        error = (RunNotFound(f"no intact checkpoint in {self.uri}") if bound is None
                 else NoCheckpointBeforeCollapse(self._nothing_before_collapse(mark, bound)))
        return EvaluationChoice(None, problems, error)

    def checkpoint_to_evaluate(self) -> CheckpointInfo:
        """The checkpoint the run marked, else the newest intact one. A run the collapse (or
        dead-D) rule stopped is scored from the newest intact checkpoint at or before its last
        healthy record (Section 4: "the last checkpoint saved before" the collapse), also when the
        marked one is damaged or missing (a warning says so), never from one saved after that;
        when none was saved before, NoCheckpointBeforeCollapse says so in one line."""
        choice = self.choice()
        using = f"using {choice.info.name}" if choice.info is not None else "no other checkpoint qualifies"
        for problem in choice.problems:
            log.warning("%s; %s", problem, using)
        if choice.info is None:
            raise choice.error
        return choice.info

    def _healthy_bound(self, mark: dict[str, Any], scanned: list[CheckpointInfo]) -> int | None:
        """The newest iteration a checkpoint to evaluate may have; None: any (no rule stopped the run)."""
        if mark.get("collapse_onset") is not None:
            healthy = mark.get("last_healthy")
            return int(healthy) if healthy is not None else 0
        if mark and (self.read_status() or {}).get("state") in STOPPED_BY_RULE:
            # A mark written before onsets were recorded: the checkpoint it names (if any) preceded
            # the collapse; checkpoints after it may not.
            marked = mark.get("checkpoint")
            if not marked:
                return 0
            named = [info.iteration for info in scanned if info.name == marked]
            return named[0] if named else (ckpt.iteration_of(marked) or 0)
        return None

    def _nothing_before_collapse(self, mark: dict[str, Any], bound: int) -> str:
        reason = str(mark.get("reason") or "stopped by the collapse rule")
        onset = mark.get("collapse_onset")
        what = "its discriminator died" if reason.startswith("dead") else "it collapsed"
        where = f"{what} at iteration {onset}" if onset is not None else f"it was stopped ({reason})"
        healthy = f", its last healthy record at iteration {bound}" if bound > 0 else ""
        return (f"run {self.uri}: {where} and no intact checkpoint was saved before{healthy}, so there is "
                f"none to evaluate or start from (a smaller train.checkpoint_every keeps one)")
