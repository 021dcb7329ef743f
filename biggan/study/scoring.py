"""One run of a study scored alike: at its checkpoint to evaluate (Section 4: a collapsed run's
last healthy one), with the study's one classifier file and its settings (samples, standing
statistics, seed: the study's eval section), optionally every checkpoint before it too, and the
truncation sweep for the best-FID point (Section 3.1). The outcome goes to
`<study>/scores/<run>.json`; the figures also go to the run's own metric histories, each record
carrying the fingerprint of the extractor file and the reference statistics.

A collapsed run that saved nothing before the collapse began has nothing to score: its outcome
says so (a row of the table, not a failure). A figure is reused only when a record with the same
settings AND the same fingerprint exists (biggan.eval.history.recorded_figure); one computed with
another classifier is computed again, which the evaluate node's "already scored?" does not check.
"""

from __future__ import annotations

import time
from typing import Any

from biggan.config import EvalConfig
from biggan.eval.history import record_meta, recorded_figure
from biggan.eval.metrics import compute_metrics
from biggan.eval.session import EvalSession, open_session
from biggan.eval.truncation import real_inception_score, truncation_curve
from biggan.runs import RunStore
from biggan.runs.store import NoCheckpointBeforeCollapse
from biggan.sampling.latents import TRUNCATABLE
from biggan.storage import Location, location

SCORES_DIR = "scores"
DONE = ("scored", "nothing_to_score")  # outcomes a resumed study keeps; "failed" is scored again


def score_file(root: str | Location, run: str) -> Location:
    return location(root) / SCORES_DIR / f"{run}.json"


def read_score(root: str | Location, run: str) -> dict[str, Any] | None:
    try:
        return score_file(root, run).read_json()
    except (FileNotFoundError, OSError, ValueError):
        return None


def is_scored(root: str | Location, run: str) -> bool:
    return (read_score(root, run) or {}).get("state") in DONE


def write_score(root: str | Location, run: str, outcome: dict[str, Any]) -> dict[str, Any]:
    outcome = {"run": run, **outcome, "time": time.time()}
    score_file(root, run).write_json(outcome, indent=2)
    return outcome


def figures_of(session: EvalSession, truncation: float | None) -> dict[str, float]:
    """IS and FID of the session's checkpoint at `truncation`: read back when recorded with the same
    settings and fingerprint, else computed (one feature pass) and recorded in the run's histories."""
    store, info, ecfg = session.store, session.info, session.cfg.eval
    meta = record_meta(session, truncation, ecfg.num_samples)
    known = {m: recorded_figure(store, info.name, m, meta) for m in ("is", "fid")}
    missing = [m for m, figures in known.items() if figures is None]
    if missing:
        computed = compute_metrics(session, missing, truncation)
        for metric, figures in computed.items():
            store.evaluations.record(metric, info.name, info.iteration, figures, meta)
            known[metric] = figures
        store.tensorboard_eval(info.iteration, {k: v for f in computed.values() for k, v in f.items()}, truncation)
    return {**known["is"], **known["fid"]}


def score_run(
    root: str,  # the study folder (the runs' store)
    run: str,  # the run's name in it
    eval_cfg: EvalConfig,  # the study's evaluation settings (every run scored with the same)
    classifier: str | None,  # the study's dataset classifier file (None: the extractor is Inception)
    every_checkpoint: bool = False,  # also score every checkpoint before the evaluated one
    sweep: bool = True,  # the truncation sweep for the best-FID point
) -> dict[str, Any]:
    """Score one run (module docstring); returns and writes its outcome."""
    store = RunStore(location(root) / run).require()
    try:
        info = store.checkpoint_to_evaluate()
    except NoCheckpointBeforeCollapse as err:
        mark = store.evaluation_mark()
        return write_score(root, run, {"state": "nothing_to_score", "reason": str(err),
                                       "collapse_onset": mark.get("collapse_onset")})
    history = []
    if every_checkpoint:
        for other in store.checkpoints():
            if other.iteration < info.iteration:
                with store.evaluations.lease(other.name):
                    earlier = open_session(store, other.name, eval_cfg, classifier)
                    history.append({"checkpoint": other.name, "iteration": other.iteration,
                                    **figures_of(earlier, eval_cfg.truncation)})
    with store.evaluations.lease(info.name):
        session = open_session(store, info.name, eval_cfg, classifier)
        figures = figures_of(session, eval_cfg.truncation)
        history.append({"checkpoint": info.name, "iteration": info.iteration, **figures})
        best = _best_truncation(session, store, figures) if sweep else None
        fingerprint = session.fingerprint()
    return write_score(root, run, {
        "state": "scored", "checkpoint": info.name, "iteration": info.iteration, "truncation": eval_cfg.truncation,
        "num_samples": eval_cfg.num_samples, "FID": figures["FID"], "IS": figures["IS"], "IS_std": figures["IS_std"],
        "best_fid": best, "fingerprint": fingerprint, "classifier": classifier, "history": history})


def _best_truncation(session: EvalSession, store: RunStore, untruncated: dict[str, float]) -> dict[str, Any]:
    """The best-FID point of the truncation curve (the untruncated point included). A prior without
    a normal part has no truncation to sweep (biggan.sampling.latents): its best point is the
    untruncated one, and the outcome says why."""
    if session.cfg.model.latent not in TRUNCATABLE:
        return {"threshold": None, "FID": untruncated["FID"], "IS": untruncated["IS"],
                "note": f"prior {session.cfg.model.latent} has no normal part to truncate"}
    val = session.cfg.data.val_shards
    val_is = real_inception_score(session, val) if val is not None else None
    curve = truncation_curve(session, store.file("truncation"), val_is)
    return dict(curve["operating_points"]["best_fid"])


# ---------------------------------------------------------------- failures

FAILURES_DIR = "failures"


def record_failure(root: str | Location, run: str, stage: str, error: str) -> None:
    """A run that failed (`stage`: train or score) is a row of the table marked failed, not a failed study."""
    (location(root) / FAILURES_DIR / f"{run}.json").write_json(
        {"run": run, "stage": stage, "error": " ".join(str(error).split())[:2000], "time": time.time()}, indent=2)


def clear_failure(root: str | Location, run: str) -> None:
    (location(root) / FAILURES_DIR / f"{run}.json").delete()


def read_failure(root: str | Location, run: str) -> dict[str, Any] | None:
    try:
        return (location(root) / FAILURES_DIR / f"{run}.json").read_json()
    except (FileNotFoundError, OSError, ValueError):
        return None
