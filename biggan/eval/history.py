"""Scheduled evaluation bookkeeping: which checkpoints of a run have been scored, the metrics
history (JSON lines in the run store) and the FID/IS-over-iterations plot.

Idempotent by construction: a checkpoint is evaluated only if its name is not yet in the run's
metrics_history.jsonl, and each record is appended only after its scores exist, so running the
scheduled flow twice evaluates nothing twice (and a crash re-does at most one).
"""

from __future__ import annotations

from biggan.files import save_figure_atomic
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.store import HISTORY_PLOT
from biggan.storage import Location


def unevaluated_checkpoints(store: RunStore) -> list[CheckpointInfo]:
    """Checkpoints of the run not yet in its history, oldest first."""
    done = {record.get("checkpoint") for record in store.history.read()}
    return [info for info in store.checkpoints() if info.name not in done]


def plot_history(store: RunStore) -> Location | None:
    """Redraw the run's metrics_history.png: FID and IS against training iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = sorted(store.history.read(), key=lambda r: r["iteration"])
    if not records:
        return None
    its = [r["iteration"] for r in records]
    fig, (ax_fid, ax_is) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_fid.plot(its, [r["metrics"].get("FID", float("nan")) for r in records], "o-", color="tab:red")
    ax_fid.set_xlabel("iteration")
    ax_fid.set_ylabel("FID (lower is better)")
    ax_is.plot(its, [r["metrics"].get("IS", float("nan")) for r in records], "o-", color="tab:blue")
    ax_is.set_xlabel("iteration")
    ax_is.set_ylabel("IS (higher is better)")
    fig.suptitle(f"{store.name}: EMA G with standing stats")
    fig.tight_layout()
    return save_figure_atomic(fig, store.file(HISTORY_PLOT))
