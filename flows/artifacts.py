"""Prefect artifacts of the flows: scores as rounded tables, pictures inline, verdicts.

Pictures are embedded in markdown artifacts as PNG data URIs (`![](data:image/png;base64,...)`),
which Prefect 3.8.8's UI renders inline; `create_image_artifact` takes a URL only, and would
print a whole data URI as its "Image URL". The file's own location is shown under each picture.
Keys are lowercase letters, digits and dashes (Prefect refuses anything else) and name the run
(and the split), so two runs or two splits never overwrite each other's artifacts.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from biggan.storage import location

# Bigger pictures are linked, not embedded: the artifact is stored in Prefect's database and
# sent whole to the browser. A 128 px sample sheet is well below this.
MAX_INLINE_BYTES = 4 * 2**20
DIGITS = 4  # significant digits of every number in a summary


def slug(name: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes only (Prefect rejects other characters)."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in text.split("-") if part) or "run"


def rounded(value: Any) -> Any:
    """Floats to DIGITS significant digits; everything else as it is."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{DIGITS}g}")
    return value


def _fmt(value: Any) -> str:
    return f"{value:.{DIGITS}g}" if isinstance(value, float) else str(value)


def image(uri: str | None, caption: str) -> str:
    """Markdown of one picture: embedded when it is a readable PNG of sensible size."""
    if not uri:
        return f"*{caption}: not written*"
    try:
        data = location(uri).read_bytes()
    except (FileNotFoundError, OSError) as err:
        return f"*{caption}: `{uri}` could not be read ({type(err).__name__})*"
    if len(data) > MAX_INLINE_BYTES:
        return f"*{caption}: `{uri}` ({len(data) / 2**20:.1f} MB, too large to embed)*"
    alt = caption.replace("[", "(").replace("]", ")")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})\n\n`{uri}`"


def key_value_table(key: str, values: dict[str, Any], description: str) -> None:
    """A two-column table (what, value), numbers rounded."""
    create_table_artifact(key=key, description=description,
                          table=[{"what": k, "value": rounded(v)} for k, v in values.items()])


def publish_sample_sheet(run_name: str, uri: str, iteration: int | None) -> None:
    at = f" at iteration {iteration}" if iteration is not None else ""
    create_markdown_artifact(
        key=f"samples-{slug(run_name)}",
        markdown=(f"# Samples of `{run_name}`{at}\n\nEMA G with standing statistics, fixed latents, one row per "
                  f"class.\n\n{image(uri, f'sample sheet{at}')}\n"),
        description=f"Sample sheet{at}")


def publish_stability(run_name: str, spectra_uri: str | None, rollbacks: list[str]) -> None:
    """The run's stability artifact: its rollbacks, one line each, and the spectra figure (Figure 3
    of the paper: sigma_0 of every layer of G and D over iterations, onset and rollbacks marked)."""
    lines = [f"# Stability of `{run_name}`", ""]
    if rollbacks:
        lines += ["## Rollbacks", ""] + [f"- {line}" for line in rollbacks] + [""]
    else:
        lines += ["No rollback so far.", ""]
    lines += ["## Top singular value of every layer (Appendix F, Figure 3)", "",
              "One line per layer (first dark, last light); red dashed: a collapse onset; green: where a "
              "rollback went back to; faint: the stretch a rollback abandoned.", "",
              image(spectra_uri, "sigma_0 of G's and D's layers over iterations")]
    create_markdown_artifact(key=f"stability-{slug(run_name)}", markdown="\n".join(lines),
                             description="Rollbacks and the spectra of G and D")


def publish_evaluation(run_name: str, records: list[dict], plot: str | None) -> None:
    rows = [{"checkpoint": r["checkpoint"], "iteration": r["iteration"],
             **{k: rounded(v) for k, v in r["metrics"].items()}} for r in records]
    if rows:
        create_table_artifact(key=f"evaluation-{slug(run_name)}", table=rows,
                              description=f"IS/FID of newly evaluated checkpoints of {run_name}")
    create_markdown_artifact(
        key=f"metrics-history-{slug(run_name)}",
        markdown=(f"# Metrics history of `{run_name}`\n\n{len(records)} checkpoint(s) evaluated this run.\n\n"
                  f"{image(plot, 'FID and IS over iterations')}\n"),
        description="FID and IS over training iterations")


def publish_truncation(run_name: str, result: dict) -> None:
    create_table_artifact(key=f"truncation-curve-{slug(run_name)}",
                          table=[{k: rounded(v) for k, v in row.items()} for row in result["rows"]],
                          description="IS and FID per truncation threshold (Section 3.1)")
    points = result["operating_points"]
    lines = [f"# Table 2 operating points of `{run_name}` ({result['checkpoint']})\n",
             "| point | threshold | IS | FID |", "|---|---|---|---|"]
    for key, label in (("best_fid", "best FID"), ("is_matches_val", "IS = real val IS"), ("max_is", "max IS")):
        p = points.get(key)
        if p is not None:
            threshold = "none (untruncated)" if p["threshold"] is None else _fmt(p["threshold"])
            lines.append(f"| {label} | {threshold} | {_fmt(p['IS'])} | {_fmt(p['FID'])} |")
    lines += ["", f"real validation IS: {_fmt(points['val_is'])}", "", "## IS vs FID", "",
              image(result["plot"], "truncation curve"), "", f"table: `{result['csv']}`"]
    for threshold, grid in result["grids"].items():
        lines += ["", f"## Samples at truncation {threshold}", "", image(grid, f"samples at truncation {threshold}")]
    create_markdown_artifact(key=f"truncation-points-{slug(run_name)}", markdown="\n".join(lines),
                             description="Best FID, FID at real IS, FID at max IS; the curve and sample grids")


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
    for name, note in result.get("backbone_notes", {}).items():
        lines.append(f"\n*{name}*: {note}.")
    for name, s in result["backbones"].items():
        lines += ["", f"## Nearest neighbours ({name})", "",
                  "Each row: a generated image, then its nearest training images.", "",
                  image(s["grid"], f"nearest neighbours ({name})")]
    lines += ["", "## NN distances", "", image(result.get("distance_plot"), "NN distance distributions")]
    create_markdown_artifact(key=f"memorization-{slug(run_name)}", markdown="\n".join(lines),
                             description="D accuracy and nearest-neighbour copy check")


def publish_quality(run_name: str, quality: dict, copying: bool | None = None) -> bool:
    """The quality verdict of the demo bar as its own artifact; returns whether it is met."""
    agree, bar = quality["agreement"], quality["bar"]
    rows = [
        {"criterion": "mean class agreement", "value": rounded(agree["mean"]), "bar": f">= {bar['mean_agreement']}",
         "passes": quality["passes"]["mean_agreement"]},
        {"criterion": "worst class agreement", "value": rounded(agree["min"]),
         "bar": f">= {bar['min_class_agreement']}", "passes": quality["passes"]["min_class_agreement"]},
        {"criterion": "FID drop (untrained / final)", "value": rounded(quality["fid_drop"]),
         "bar": f">= {bar['fid_drop']}", "passes": quality["passes"]["fid_drop"]},
    ]
    if copying is not None:
        rows.append({"criterion": "no copying (NN check)", "value": not copying, "bar": "True", "passes": not copying})
    met = all(row["passes"] for row in rows)
    lines = [f"# Quality verdict of `{run_name}` ({quality['checkpoint']}): **{'met' if met else 'NOT met'}**\n",
             f"Class agreement judged by an independent classifier (val accuracy "
             f"{agree['judge_val_accuracy']:.3f}) at truncation {agree['truncation']:g}; FID "
             f"{quality['fid_untrained']:.2f} untrained -> {quality['fid_final']:.2f} final.\n",
             "| criterion | value | bar | passes |", "|---|---|---|---|",
             *(f"| {r['criterion']} | {_fmt(r['value'])} | {r['bar']} | {'yes' if r['passes'] else '**no**'} |"
               for r in rows)]
    create_markdown_artifact(key=f"quality-{slug(run_name)}", markdown="\n".join(lines),
                             description=f"Demo bar {'met' if met else 'NOT met'}")
    return met


def publish_ray_dashboard(run_name: str, url: str, job_name: str, started_here: bool, token_auth: bool) -> None:
    """Where to watch the Ray job, how to get in, and what this Ray version's dashboard shows."""
    login = ("It opens on an *Authentication Token Required* dialog: paste the token that `ray get-auth-token` "
             "prints on the head node (Ray 2.60 turns token authentication on for new clusters)."
             if token_auth else "Token authentication is off for this cluster (`RAY_AUTH_MODE=disabled`).")
    lifetime = ("This Ray was started by the flow run on this machine: the dashboard lives as long as the run, "
                "and the link is dead once training ends. To keep one up, start a cluster yourself "
                "(`ray start --head --dashboard-host 127.0.0.1`) and pass its address "
                "(`RAY_ADDRESS=127.0.0.1:6379` in the worker's environment, or `cluster.ray_address`); "
                "jobs then join it and the dashboard outlives them."
                if started_here else
                "The job joined an existing cluster: the dashboard lives as long as that cluster.")
    create_markdown_artifact(
        key=f"ray-dashboard-{slug(run_name)}",
        markdown="\n".join([
            f"# Ray dashboard of `{run_name}`", "", f"[{url}]({url})", "",
            f"- **Log in.** {login}",
            f"- **Jobs**: this run is the job named `{job_name}` (its metadata: run location, preset).",
            "- **Actors**: the Train controller and one `RayTrainWorker` per rank; rank 0's *Log* "
            "(STDOUT) has the progress lines. **Cluster**: CPU, memory and GPU per node. **Logs**: every "
            "process's log files.",
            "- Ray 2.60's dashboard has **no Train tab**: training progress is this flow run's progress "
            "artifact and log (losses at every log tick), and the run's `stats.jsonl`.",
            "- The **Metrics** page stays empty without Prometheus and Grafana: `ray metrics launch-prometheus` "
            "and a Grafana pointed at it (`RAY_PROMETHEUS_HOST`, `RAY_GRAFANA_HOST` set before the cluster "
            "starts).",
            f"- **Lifetime.** {lifetime}",
        ]),
        description="Where and how to watch the Ray Train job",
    )
