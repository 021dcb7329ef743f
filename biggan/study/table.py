"""The study's table, read back from its runs' files: one row per cell (Table 1's form: FID and IS
mean +- std over seeds, and per seed; the best-FID truncation point; how many seeds collapsed and
at which iteration; images/s) and one per run; written as study.csv, runs.csv, study.md and
study.png (FID per cell, one dot per seed).

Where each figure comes from: the run's status.json (how training ended), evaluate.json (the
collapse onset the collapse rule recorded), stats.jsonl (images/s, the median over log ticks),
the study's scores/<run>.json and failures/<run>.json. The standard deviation is the sample one
(n - 1) over the seeds that were scored; with one scored seed there is none.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from biggan.runs import RunStore
from biggan.runs.store import STOPPED_BY_RULE
from biggan.storage import Location
from biggan.study.plan import StudyPlan
from biggan.study.scoring import read_failure, read_score
from biggan.study.spec import value_text

CSV_FILE, RUNS_CSV_FILE, MARKDOWN_FILE, PLOT_FILE = "study.csv", "runs.csv", "study.md", "study.png"


@dataclass
class RunRow:
    cell: str
    seed: int
    run: str
    state: str  # scored | collapsed, nothing to score | failed | trained, not scored | not finished | not started
    train_state: str | None = None  # status.json: running / finished / collapsed / stopped / failed
    iteration: int | None = None  # where training ended (or is)
    collapse_onset: int | None = None  # the collapse rule's onset (Section 4), when it stopped the run
    evaluated: int | None = None  # iteration of the checkpoint scored
    FID: float | None = None
    IS: float | None = None
    IS_std: float | None = None
    best_threshold: float | None = None  # None: untruncated (or no sweep)
    best_FID: float | None = None
    images_per_s: float | None = None
    fingerprint: str | None = None
    error: str | None = None

    @property
    def collapsed(self) -> bool:
        return self.train_state in STOPPED_BY_RULE


@dataclass
class CellRow:
    cell: str
    settings: dict[str, Any]  # the varied keys' values
    seeds: int
    scored: int
    failed: int
    collapsed: int
    collapsed_at: list[int] = field(default_factory=list)  # onset iterations of the collapsed seeds
    FID_mean: float | None = None
    FID_std: float | None = None
    IS_mean: float | None = None
    IS_std: float | None = None
    FID_per_seed: dict[int, float] = field(default_factory=dict)
    best_FID_mean: float | None = None
    best_FID_std: float | None = None
    best_thresholds: list[float | None] = field(default_factory=list)
    images_per_s: float | None = None
    within_spread_of_best: bool | None = None  # |mean - best mean| <= the two stds added


def run_row(plan: StudyPlan, cell: str, seed: int, name: str) -> RunRow:
    root = plan.location
    row = RunRow(cell=cell, seed=seed, run=name, state="not started")
    store = RunStore(root / name)
    status = store.read_status() if store.exists() else None
    if status:
        row.train_state, row.iteration = status.get("state"), status.get("iteration")
        row.state = "trained, not scored" if row.train_state == "finished" or row.collapsed else "not finished"
        if row.collapsed:
            row.collapse_onset = store.evaluation_mark().get("collapse_onset")
        speeds = [r["images_per_s"] for r in store.stats.read() if isinstance(r.get("images_per_s"), (int, float))]
        row.images_per_s = statistics.median(speeds) if speeds else None
    score = read_score(root, name) or {}
    if score.get("state") == "scored":
        best = score.get("best_fid") or {}
        row.state = "scored"
        row.evaluated, row.FID, row.IS, row.IS_std = score["iteration"], score["FID"], score["IS"], score["IS_std"]
        row.best_threshold, row.best_FID, row.fingerprint = best.get("threshold"), best.get("FID"), score["fingerprint"]
    elif score.get("state") == "nothing_to_score":
        row.state = "collapsed, nothing to score"
        row.collapse_onset = row.collapse_onset or score.get("collapse_onset")
    failure = read_failure(root, name)
    if failure is not None and row.state != "scored":
        row.state, row.error = "failed", f"{failure['stage']}: {failure['error']}"
    elif row.train_state == "failed" and row.state != "scored":
        row.state, row.error = "failed", f"train: {status.get('reason') or 'see the run status'}"
    return row


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def cell_rows(plan: StudyPlan, runs: list[RunRow]) -> list[CellRow]:
    out = []
    for cell in plan.cells:
        mine = [r for r in runs if r.cell == cell.name]
        scored = [r for r in mine if r.state == "scored"]
        row = CellRow(cell=cell.name, settings={k: cell.overrides.get(k) for k in plan.varied},
                      seeds=len(mine), scored=len(scored), failed=sum(r.state == "failed" for r in mine),
                      collapsed=sum(r.collapsed for r in mine),
                      collapsed_at=sorted(r.collapse_onset for r in mine
                                          if r.collapsed and r.collapse_onset is not None))
        row.FID_mean, row.FID_std = _spread([r.FID for r in scored])
        row.IS_mean, row.IS_std = _spread([r.IS for r in scored])
        row.FID_per_seed = {r.seed: r.FID for r in scored}
        row.best_FID_mean, row.best_FID_std = _spread([r.best_FID for r in scored if r.best_FID is not None])
        row.best_thresholds = [r.best_threshold for r in scored if r.best_FID is not None]
        speeds = [r.images_per_s for r in mine if r.images_per_s is not None]
        row.images_per_s = statistics.mean(speeds) if speeds else None
        out.append(row)
    ranked = [c for c in out if c.FID_mean is not None]
    if ranked:
        best = min(ranked, key=lambda c: c.FID_mean)
        for c in ranked:
            c.within_spread_of_best = abs(c.FID_mean - best.FID_mean) <= (c.FID_std or 0.0) + (best.FID_std or 0.0)
    return out


def build_table(plan: StudyPlan) -> tuple[list[CellRow], list[RunRow]]:
    runs = [run_row(plan, r.cell, r.seed, r.name) for r in plan.runs]
    return cell_rows(plan, runs), runs


# ---------------------------------------------------------------- formats


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{_num(mean)} +- {_num(std)}" if std is not None else f"{_num(mean)} (1 seed)"


def _threshold(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def cell_records(plan: StudyPlan, cells: list[CellRow]) -> list[dict[str, Any]]:
    """One flat dict per cell: the CSV's rows and the Prefect table artifact's."""
    return [{"cell": c.cell, **{k: value_text(v) for k, v in c.settings.items()}, "seeds": c.seeds,
             "scored": c.scored, "failed": c.failed, "collapsed": c.collapsed,
             "collapsed_at": " ".join(map(str, c.collapsed_at)), "FID_mean": c.FID_mean, "FID_std": c.FID_std,
             "IS_mean": c.IS_mean, "IS_std": c.IS_std,
             "FID_per_seed": " ".join(f"s{s}={_num(v)}" for s, v in sorted(c.FID_per_seed.items())),
             "best_FID_mean": c.best_FID_mean, "best_FID_std": c.best_FID_std,
             "best_thresholds": " ".join(_threshold(t) for t in c.best_thresholds),
             "images_per_s": c.images_per_s, "within_spread_of_best": c.within_spread_of_best} for c in cells]


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def markdown(plan: StudyPlan, cells: list[CellRow], runs: list[RunRow]) -> str:
    spec = plan.spec
    fingerprints = sorted({r.fingerprint for r in runs if r.fingerprint})
    lines = [f"# Study `{spec.name}`", "",
             f"Base preset `{spec.preset}`" + (f" (study preset `{spec.study_preset}`)" if spec.study_preset else "")
             + f"; {len(plan.cells)} cells x {len(spec.seeds)} seeds ({', '.join(map(str, spec.seeds))}); "
             f"every run scored at its checkpoint to evaluate with {plan.runs[0].config.eval.num_samples} samples.",
             "", "Overrides of every cell: " + (", ".join(f"`{k}={v}`" for k, v in spec.overrides.items()) or "none"),
             "", "Score fingerprint (extractor file + reference statistics): "
             + (", ".join(f"`{f[:16]}`" for f in fingerprints) or "none yet")
             + (" **(more than one: these scores do not compare)**" if len(fingerprints) > 1 else ""), "",
             "| cell | " + " | ".join(plan.varied) + " | FID (mean +- std) | IS (mean +- std) | FID per seed | "
             "best-FID truncation | collapsed | images/s | within seed spread of best |",
             "|" + "---|" * (len(plan.varied) + 8)]
    for c in cells:
        at = f" at {', '.join(map(str, c.collapsed_at))}" if c.collapsed_at else ""
        collapsed = f"{c.collapsed}/{c.seeds}{at}"
        best = ("-" if c.best_FID_mean is None else
                f"{_pm(c.best_FID_mean, c.best_FID_std)} at {', '.join(_threshold(t) for t in c.best_thresholds)}")
        lines.append(f"| {c.cell} | " + " | ".join(f"`{value_text(v)}`" for v in c.settings.values())
                     + f" | {_pm(c.FID_mean, c.FID_std)} | {_pm(c.IS_mean, c.IS_std)} | "
                     + (", ".join(f"s{s} {_num(v)}" for s, v in sorted(c.FID_per_seed.items())) or "-")
                     + f" | {best} | {collapsed} | {_num(c.images_per_s, 3)} | "
                     + ("-" if c.within_spread_of_best is None else "yes" if c.within_spread_of_best else "no") + " |")
    lines += ["", "## Runs", "", "| run | state | ended at | evaluated | FID | IS | best threshold | images/s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        ended = "-" if r.iteration is None else f"{r.iteration}" + (
            f" (collapse onset {r.collapse_onset})" if r.collapse_onset is not None else "")
        lines.append(f"| {r.run} | {r.state} | {ended} | {r.evaluated if r.evaluated is not None else '-'} | "
                     f"{_num(r.FID)} | {_num(r.IS)} | {_threshold(r.best_threshold) if r.best_FID else '-'} | "
                     f"{_num(r.images_per_s, 3)} |")
    failed = [r for r in runs if r.error]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{r.run}`: {r.error}" for r in failed]
    lines += ["", f"![FID per cell, one dot per seed]({PLOT_FILE})", ""]
    return "\n".join(lines)


def plot(plan: StudyPlan, cells: list[CellRow], target: Location) -> Location | None:
    """FID per cell: one dot per scored seed, the mean with its std as a bar."""
    from biggan.files import save_figure_atomic

    if not any(c.FID_per_seed for c in cells):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(cells) + 2), 4.2))
    for x, c in enumerate(cells):
        seeds = sorted(c.FID_per_seed.items())
        ax.plot([x] * len(seeds), [v for _s, v in seeds], "o", color="tab:blue", alpha=0.7,
                label="one seed" if x == 0 else None)
        if c.FID_mean is not None:
            ax.errorbar([x + 0.15], [c.FID_mean], yerr=[c.FID_std or 0.0], fmt="_", color="tab:red", capsize=4,
                        markersize=14, label="mean +- std" if x == 0 else None)
    ax.set_xticks(range(len(cells)), [c.cell for c in cells], rotation=30, ha="right")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{plan.spec.name}: FID per cell")
    ax.legend(loc="best")
    fig.tight_layout()
    return save_figure_atomic(fig, target, dpi=110)


def write_table(plan: StudyPlan) -> dict[str, Any]:
    """study.csv, runs.csv, study.md and study.png in the study folder; returns the rows and where."""
    cells, runs = build_table(plan)
    root = plan.location
    records = cell_records(plan, cells)
    (root / CSV_FILE).write_text(_csv(records))
    (root / RUNS_CSV_FILE).write_text(_csv([{k: v for k, v in asdict(r).items()} for r in runs]))
    (root / MARKDOWN_FILE).write_text(markdown(plan, cells, runs))
    picture = plot(plan, cells, root / PLOT_FILE)
    return {"cells": records, "runs": [asdict(r) for r in runs], "csv": (root / CSV_FILE).uri,
            "runs_csv": (root / RUNS_CSV_FILE).uri, "markdown": (root / MARKDOWN_FILE).uri,
            "plot": None if picture is None else picture.uri,
            "fingerprints": sorted({r.fingerprint for r in runs if r.fingerprint})}
