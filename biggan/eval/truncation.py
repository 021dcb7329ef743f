"""The truncation curve (Section 3.1, Figure 2a / Figure 16) and Table 2's operating points.

Section 3.1: sampling z from a truncated normal (values beyond a threshold resampled) trades
variety for fidelity; sweeping the threshold traces IS against FID. Table 2 reports three
points of that curve: the best FID, the FID where IS equals the real validation data's IS,
and the FID at the maximum IS.

The untruncated sampler (z from the plain prior, threshold `None`) is a point of the curve too,
the first one: Table 2's best FID can sit there (truncation trades FID for IS), so the best FID is
chosen among every point, the untruncated one included. It is what the evaluate node scores by
default, so its figures are usually read back, not recomputed.
"""

from __future__ import annotations

import csv
import io

from biggan.files import save_figure_atomic
from biggan.runs import RunStore
from biggan.storage import Location

COLUMNS = ("threshold", "IS", "IS_std", "FID")
UNTRUNCATED = None  # the threshold of the plain prior's point


def _spread(row: dict) -> float:
    """Sort key from most variety to least: the untruncated point first, then falling thresholds."""
    return float("inf") if row["threshold"] is UNTRUNCATED else row["threshold"]


def threshold_label(threshold: float | None) -> str:
    return "none" if threshold is UNTRUNCATED else f"{threshold:.3g}"


def operating_points(rows: list[dict], val_is: float | None) -> dict:
    """Table 2's three points of a truncation curve.

    `rows`: [{"threshold", "IS", "FID", ...}], threshold None = untruncated. The IS-matching point:
    along the curve ordered by threshold, the first segment of two truncated points whose IS range
    brackets `val_is` is interpolated linearly in IS (threshold and FID both); when none brackets it
    (e.g. G never reaches the real IS, or it lies between the untruncated point and the largest
    threshold, where no threshold can be interpolated), the point with the nearest IS is taken.
    `method` says which was used.
    """
    if not rows:
        raise ValueError("no rows in the truncation curve")
    best = min(rows, key=lambda r: r["FID"])
    top = max(rows, key=lambda r: r["IS"])
    out = {
        "best_fid": {"threshold": best["threshold"], "IS": best["IS"], "FID": best["FID"]},
        "max_is": {"threshold": top["threshold"], "IS": top["IS"], "FID": top["FID"]},
        "val_is": val_is,
        "is_matches_val": None,
    }
    if val_is is None:
        return out
    ordered = sorted((r for r in rows if r["threshold"] is not UNTRUNCATED), key=lambda r: -r["threshold"])
    for a, b in zip(ordered, ordered[1:]):
        lo, hi = sorted((a["IS"], b["IS"]))
        if lo <= val_is <= hi and a["IS"] != b["IS"]:
            w = (val_is - a["IS"]) / (b["IS"] - a["IS"])
            out["is_matches_val"] = {
                "threshold": a["threshold"] + w * (b["threshold"] - a["threshold"]),
                "IS": val_is,
                "FID": a["FID"] + w * (b["FID"] - a["FID"]),
                "method": "interpolated",
            }
            return out
    near = min(rows, key=lambda r: abs(r["IS"] - val_is))
    out["is_matches_val"] = {"threshold": near["threshold"], "IS": near["IS"], "FID": near["FID"],
                             "method": "nearest"}
    return out


def write_table(rows: list[dict], out_dir: Location) -> tuple[Location, Location]:
    """curve.csv and curve.json (atomic)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "threshold": threshold_label(row["threshold"])})
    csv_path, json_path = out_dir / "curve.csv", out_dir / "curve.json"
    csv_path.write_text(buffer.getvalue())
    json_path.write_json(rows, indent=2)
    return csv_path, json_path


def plot_curve(rows: list[dict], points: dict, path: Location, title: str) -> Location:
    """IS (x) against FID (y), each point labelled by its threshold (Figure 2a's axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(rows, key=_spread, reverse=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([r["IS"] for r in ordered], [r["FID"] for r in ordered], "o-", color="tab:blue")
    for r in ordered:
        ax.annotate(threshold_label(r["threshold"]), (r["IS"], r["FID"]), textcoords="offset points", xytext=(4, 4))
    if points.get("val_is") is not None:
        ax.axvline(points["val_is"], color="tab:gray", ls="--", lw=1, label=f"real val IS {points['val_is']:.2f}")
        ax.legend(loc="best")
    ax.set_xlabel("Inception Score (higher is better)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=120)


def real_inception_score(session, shard_dir: str) -> float:
    """IS of real images with the session's extractor (Table 2 compares against the val IS)."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    from biggan.eval.metrics import IS_SPLITS, RNG_SEED
    from biggan.eval.reference import real_logits
    from biggan.eval.session import cache_dir

    layer = session.layer("isc")
    logits = real_logits(shard_dir, session.extractor.name, lambda: session.module([layer]), layer,
                         cache_dir(session.cfg), session.device, session.cfg.eval.batch_size)
    out = isc_features_to_metric(logits, splits=max(1, min(IS_SPLITS, logits.shape[0])), shuffle=True,
                                 rng_seed=RNG_SEED)
    return out["inception_score_mean"]


def truncation_curve(
    session,  # biggan.eval.session.EvalSession of the checkpoint
    out_dir: Location,  # <run>/truncation
    val_is: float | None,  # real validation IS with the same extractor (None: no matching point)
    thresholds: list[float] | None = None,  # None = cfg.eval.thresholds
    num_samples: int | None = None,
    grid_per_class: int = 4,  # samples per class in each threshold's grid
) -> dict:
    """Sweep the untruncated sampler and the thresholds; write curve.csv/json, curve.png,
    grid_t<thr>.png (grid_tnone.png untruncated), operating_points.json. A point the evaluate node
    already scored with the same settings is read back, not recomputed."""
    from biggan.eval.history import record_meta, recorded_figure
    from biggan.eval.metrics import compute_metrics
    from biggan.sampling.sheets import save_sample_sheet

    cfg = session.cfg
    n = num_samples if num_samples is not None else cfg.eval.num_samples
    rows, grids = [], {}
    classes = list(range(min(cfg.model.num_classes, 10)))
    for threshold in [UNTRUNCATED, *sorted(thresholds or cfg.eval.thresholds, reverse=True)]:
        meta = record_meta(session, threshold, n)
        known = {m: recorded_figure(session.store, session.info.name, m, meta) for m in ("is", "fid")}
        if any(v is None for v in known.values()):  # standing stats at this truncation, then score
            known = compute_metrics(session, ["is", "fid"], threshold, n)
        rows.append({"threshold": threshold, **known["is"], **known["fid"]})
        grid = out_dir / f"grid_t{threshold_label(threshold)}.png"
        save_sample_sheet(session.generator(threshold), grid, classes, grid_per_class, threshold, cfg.eval.seed,
                          prior=cfg.model.latent)
        grids[threshold_label(threshold)] = grid.uri
    points = operating_points(rows, val_is)
    csv_path, json_path = write_table(rows, out_dir)
    plot = plot_curve(rows, points, out_dir / "curve.png", f"{cfg.name}: truncation curve")
    (out_dir / "operating_points.json").write_json(points, indent=2)
    return {"rows": rows, "operating_points": points, "csv": csv_path.uri, "json": json_path.uri,
            "plot": plot.uri, "grids": grids, "operating_points_path": (out_dir / "operating_points.json").uri}


def truncation_curve_of_checkpoint(
    store: RunStore,
    checkpoint: str | None,  # None = the checkpoint the run marked for evaluation
    eval_cfg=None,  # EvalConfig or dotted eval overrides; None = the run's own
    classifier: str | None = None,  # a trained dataset classifier file (when the config uses one)
) -> dict:
    """The curve of a checkpoint's EMA G into <run>/truncation; the IS-matching point uses the
    val shards' real IS."""
    from biggan.eval.session import open_session

    session = open_session(store, checkpoint, eval_cfg, classifier)
    val = session.cfg.data.val_shards
    val_is = real_inception_score(session, val) if val is not None else None
    out = truncation_curve(session, store.file("truncation"), val_is)
    return {"checkpoint": session.info.name, "iteration": session.info.iteration, **out}
