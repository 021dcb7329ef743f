"""The evaluate node: score every checkpoint of a run that a metric has not scored yet, record
one line per metric (`metric-<name>.jsonl`), redraw the FID/IS-over-iterations plot.

Idempotent by construction: a checkpoint is scored only for the metrics whose history lacks it,
and each record is appended only after its figures exist, so running the scheduled flow twice
scores nothing twice (and a crash re-does at most one checkpoint).
"""

from __future__ import annotations

from typing import Any

from biggan.config import EvalConfig
from biggan.eval.metrics import compute_metrics
from biggan.eval.session import EvalSession, open_session
from biggan.files import save_figure_atomic
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.evaluations import iter_figures
from biggan.runs.store import HISTORY_PLOT
from biggan.storage import Location


def pending_checkpoints(store: RunStore, metrics: list[str], truncation: float | None) -> list[CheckpointInfo]:
    """Checkpoints of the run that some metric has not scored at `truncation`, oldest first."""
    scored = {metric: store.evaluations.scored(metric, truncation) for metric in metrics}
    return [info for info in store.checkpoints() if any(info.name not in done for done in scored.values())]


def record_meta(session: EvalSession, truncation: float | None, num_samples: int) -> dict[str, Any]:
    """What a score was computed with, stored in its record. `fingerprint`: sha256 of the extractor's
    weights file and the reference statistics (EvalSession.fingerprint): scores compare only when equal."""
    ecfg = session.cfg.eval
    return {"num_samples": num_samples, "truncation": truncation, "extractor": session.extractor.name,
            "reference": session.reference().name if ecfg.reference_stats is None else str(ecfg.reference_stats),
            "standing_passes": ecfg.standing_passes, "seed": ecfg.seed, "fingerprint": session.fingerprint()}


def score_checkpoint(store: RunStore, checkpoint: str, eval_cfg: EvalConfig | None,
                     classifier: str | None = None) -> dict[str, Any]:
    """Score one checkpoint with every metric of eval.metrics it lacks; record each; return
    {"checkpoint", "iteration", "metrics": {figure: value}} over all its metrics."""
    with store.evaluations.lease(store.checkpoint(checkpoint).name):
        session = open_session(store, checkpoint, eval_cfg, classifier)
        ecfg = session.cfg.eval
        todo = [m for m in ecfg.metrics if session.info.name not in store.evaluations.scored(m, ecfg.truncation)]
        if todo:
            results = compute_metrics(session, todo, ecfg.truncation)
            meta = record_meta(session, ecfg.truncation, ecfg.num_samples)
            for metric, figures in results.items():
                store.evaluations.record(metric, session.info.name, session.info.iteration, figures, meta)
            # The same figures as TensorBoard scalars at the checkpoint's iteration (eval/FID, ...).
            store.tensorboard_eval(session.info.iteration, {k: v for f in results.values() for k, v in f.items()},
                                   ecfg.truncation)
    merged = store.evaluations.results(ecfg.metrics, ecfg.truncation).get(session.info.name, {"metrics": {}})
    return {"checkpoint": session.info.name, "iteration": session.info.iteration, "metrics": merged["metrics"],
            "truncation": ecfg.truncation, "num_samples": ecfg.num_samples, "scored": todo}


def recorded_figure(store: RunStore, checkpoint: str, metric: str, meta: dict[str, Any]) -> dict | None:
    """A metric's figures for a checkpoint recorded with the same settings (reused, not recomputed)."""
    keys = ("num_samples", "truncation", "extractor", "reference", "standing_passes", "seed", "fingerprint")
    for record in reversed(store.evaluations.history(metric).read()):
        if record["checkpoint"] == checkpoint and all(record.get(k) == meta.get(k) for k in keys):
            return record["results"]
    return None


def plot_history(store: RunStore) -> Location | None:
    """Redraw the run's metrics_history.png: FID and IS against training iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truncation = (store.evaluations.watched() or {}).get("truncation")
    rows = list(iter_figures(store.evaluations.results(["fid", "is"], truncation)))
    if not rows:
        return None
    its = [iteration for _name, iteration, _figures in rows]
    fig, (ax_fid, ax_is) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_fid.plot(its, [f.get("FID", float("nan")) for _n, _i, f in rows], "o-", color="tab:red")
    ax_fid.set_xlabel("iteration")
    ax_fid.set_ylabel("FID (lower is better)")
    ax_is.plot(its, [f.get("IS", float("nan")) for _n, _i, f in rows], "o-", color="tab:blue")
    ax_is.set_xlabel("iteration")
    ax_is.set_ylabel("IS (higher is better)")
    fig.suptitle(f"{store.name}: EMA G with standing stats")
    fig.tight_layout()
    return save_figure_atomic(fig, store.file(HISTORY_PLOT))
