"""Prefect artifacts of the evaluation nodes: tables of scores, operating points, the
memorization summary."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def slug(name: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes only (NOTES.md)."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in text.split("-") if part) or "run"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def publish_evaluation(run_name: str, records: list[dict], plot: str | None) -> None:
    rows = [{"checkpoint": r["checkpoint"], "iteration": r["iteration"],
             **{k: round(v, 4) for k, v in r["metrics"].items()}} for r in records]
    if rows:
        create_table_artifact(key=f"evaluation-{slug(run_name)}", table=rows,
                              description=f"IS/FID of newly evaluated checkpoints of {run_name}")
    create_markdown_artifact(
        key=f"metrics-history-{slug(run_name)}",
        markdown=(f"# Metrics history of `{run_name}`\n\n{len(records)} checkpoint(s) evaluated this run.\n\n"
                  f"- plot: `{plot}`\n"),
        description="FID and IS over training iterations")


def publish_truncation(run_name: str, result: dict) -> None:
    create_table_artifact(key=f"truncation-curve-{slug(run_name)}",
                          table=[{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                                 for row in result["rows"]],
                          description="IS and FID per truncation threshold (Section 3.1)")
    points = result["operating_points"]
    lines = [f"# Table 2 operating points of `{run_name}` ({result['checkpoint']})\n",
             "| point | threshold | IS | FID |", "|---|---|---|---|"]
    for key, label in (("best_fid", "best FID"), ("is_matches_val", "IS = real val IS"), ("max_is", "max IS")):
        p = points.get(key)
        if p is not None:
            lines.append(f"| {label} | {_fmt(p['threshold'])} | {_fmt(p['IS'])} | {_fmt(p['FID'])} |")
    lines += ["", f"real validation IS: {_fmt(points['val_is'])}", "", f"- plot: `{result['plot']}`",
              f"- table: `{result['csv']}`", *(f"- grid at {t}: `{g}`" for t, g in result["grids"].items())]
    create_markdown_artifact(key=f"truncation-points-{slug(run_name)}", markdown="\n".join(lines),
                             description="Best FID, FID at real IS, FID at max IS")


def publish_memorization(run_name: str, result: dict) -> None:
    acc = result["d_accuracy"]
    lines = [f"# Memorization check of `{run_name}` ({result['checkpoint']})\n",
             f"D accuracy on real images: train {acc['train_real']['accuracy']:.3f}, held-out "
             f"{acc['val_real']['accuracy']:.3f} (Section 4.2: >98% vs 50-55% for an uncollapsed D); "
             f"on generated images {acc['generated']['accuracy']:.3f}\n",
             "| backbone | generated NN median | held-out NN median | ratio | copying |", "|---|---|---|---|---|"]
    for name, s in result["backbones"].items():
        lines.append(f"| {name} | {s['generated']['median']:.4g} | {s['heldout']['median']:.4g} | "
                     f"{s['ratio_of_medians']:.3f} | {s['copying_flag']} |")
    lines += ["", *(f"- grid ({n}): `{s['grid']}`" for n, s in result["backbones"].items()),
              f"- distance plot: `{result['distance_plot']}`"]
    create_markdown_artifact(key=f"memorization-{slug(run_name)}", markdown="\n".join(lines),
                             description="D accuracy and nearest-neighbour copy check")
