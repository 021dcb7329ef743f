"""Scheduled evaluation bookkeeping: which checkpoints of a run have been scored, the metrics
history (JSON lines) and the FID/IS-over-iterations plot.

Idempotent by construction: a checkpoint is evaluated only if its name is not yet in
RUN_DIR/metrics_history.jsonl, and each record is appended only after its scores exist, so
running the scheduled flow twice evaluates nothing twice (and a crash re-does at most one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from biggan.files import save_figure_atomic

HISTORY_FILE = "metrics_history.jsonl"
PLOT_FILE = "metrics_history.png"


def read_history(run_dir: Path) -> list[dict]:
    """Records of RUN_DIR/metrics_history.jsonl; a torn last line (crash mid-append) is skipped."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def unevaluated_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories of the run not yet in the history, oldest first."""
    from biggan.train.checkpoint import list_checkpoints

    done = {record["checkpoint"] for record in read_history(run_dir)}
    return [info.path for info in list_checkpoints(Path(run_dir)) if info.path.name not in done]


def append_history(run_dir: Path, record: dict) -> Path:
    """Append one record (one line, flushed and fsynced) to the history."""
    path = Path(run_dir) / HISTORY_FILE
    # After a torn line (crash mid-append) start on a fresh line, so this record stays whole.
    torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as handle:
        handle.write(("\n" if torn else "") + json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def plot_history(run_dir: Path) -> Path | None:
    """Redraw RUN_DIR/metrics_history.png: FID and IS against training iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = sorted(read_history(run_dir), key=lambda r: r["iteration"])
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
    fig.suptitle(f"{Path(run_dir).name}: EMA G with standing stats")
    fig.tight_layout()
    path = Path(run_dir) / PLOT_FILE
    return save_figure_atomic(fig, path, dpi=100)
