"""Prefect flows of the evaluation area:

- `evaluate-biggan` (scheduled in prefect.yaml): score every checkpoint of a run not yet in its
  metrics history, append the records, redraw the FID/IS-over-iterations plot.
- `truncation-curve`: Section 3.1's IS-vs-FID sweep and Table 2's operating points.
- `memorization-check`: D accuracy train vs val (Section 4.2) and nearest neighbours (Appendix A).
- `train-dataset-classifier`: the feature extractor trained on the dataset's own shards.

Every task calls a biggan.eval function; no tensor work happens here. The pipeline flow reuses
these tasks to run the three evaluation nodes in parallel.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from biggan.config import ExperimentConfig
from biggan.eval import history
from biggan.eval.memorization import memorization_check
from biggan.eval.scoring import ensure_classifier, evaluate_checkpoint, load_run_config
from biggan.eval.truncation import truncation_curve_of_checkpoint
from biggan.runs import RunStore

# Tasks are NO_CACHE: each underlying function is idempotent on disk instead (the classifier is
# reused from its fingerprint-keyed folder, reference statistics from torch-fidelity's cache,
# evaluated checkpoints from the metrics history), which survives Prefect server restarts and
# notices deleted outputs, unlike a Prefect result cache.


@task(cache_policy=NO_CACHE)
def run_config_task(run: str, eval_overrides: dict[str, Any]) -> ExperimentConfig:
    """The run's options.json with eval overrides applied."""
    return load_run_config(run, eval_overrides)


@task(cache_policy=NO_CACHE, retries=1)
def dataset_classifier_task(config: ExperimentConfig) -> str | None:
    """Train the dataset classifier once per shard set (cached by fingerprint); None if unused."""
    trained = ensure_classifier(config)
    if trained is None:
        return None
    get_run_logger().info("dataset classifier %s (%s): train acc %.3f, val acc %s", trained.path,
                          "reused" if trained.cached else "trained", trained.train_accuracy, trained.val_accuracy)
    from biggan.eval.features import dataset_classifier_extractor

    dataset_classifier_extractor(trained.path)  # register in this process before parallel nodes start
    return str(trained.path)


@task(cache_policy=NO_CACHE)
def pending_checkpoints_task(run: str) -> list[str]:
    """Names of the run's checkpoints not yet in its metrics history."""
    return [info.name for info in history.unevaluated_checkpoints(RunStore(run))]


@task(cache_policy=NO_CACHE)
def checkpoint_to_evaluate_task(run: str, checkpoint: str | None) -> str:
    """The checkpoint asked for, else the one the run marked for evaluation (name)."""
    store = RunStore(run).require()
    return store.checkpoint(checkpoint).name if checkpoint else store.checkpoint_to_evaluate().name


@task(cache_policy=NO_CACHE, retries=1)
def evaluate_checkpoint_task(run: str, checkpoint: str, classifier: str | None, config: ExperimentConfig) -> dict:
    """IS/FID of one checkpoint's EMA G (standing stats) against the cached reference."""
    store = RunStore(run)
    return evaluate_checkpoint(store, store.checkpoint(checkpoint), classifier, config.eval)


@task(cache_policy=NO_CACHE)
def record_history_task(run: str, record: dict) -> str:
    """Append one evaluation to the run's metrics_history.jsonl."""
    store = RunStore(run)
    store.history.append(record)
    return store.history.loc.uri


@task(cache_policy=NO_CACHE)
def plot_history_task(run: str) -> str | None:
    """Redraw the run's metrics_history.png."""
    plot = history.plot_history(RunStore(run))
    return None if plot is None else plot.uri


@task(cache_policy=NO_CACHE, retries=1)
def truncation_curve_task(run: str, checkpoint: str, classifier: str | None, config: ExperimentConfig) -> dict:
    """Sweep truncation thresholds; write <run>/truncation/."""
    store = RunStore(run)
    return truncation_curve_of_checkpoint(store, store.checkpoint(checkpoint), classifier, config.eval)


@task(cache_policy=NO_CACHE, retries=1)
def memorization_task(run: str, checkpoint: str, config: ExperimentConfig) -> dict:
    """D accuracy train vs val and class-wise nearest neighbours; write <run>/memorization/."""
    store = RunStore(run)
    return memorization_check(store, store.checkpoint(checkpoint), config.eval)


# --------------------------------------------------------------------------- artifacts


@task(cache_policy=NO_CACHE, retries=1)
def quality_check_task(run: str, checkpoint: str, classifier: str | None) -> dict:
    """Class agreement (independent judge) and the FID drop from the untrained G; written to
    <run>/quality.json."""
    from biggan.eval.agreement import quality_check, write_quality

    store = RunStore(run)
    result = quality_check(store, store.checkpoint(checkpoint), classifier)
    write_quality(store, result)
    return result


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
             f"D accuracy (real vs generated): train {acc['train']['accuracy']:.3f}, "
             f"val {acc['val']['accuracy']:.3f} (Section 4.2: >98% vs 50-55% for an uncollapsed D)\n",
             "| backbone | generated NN median | held-out NN median | ratio | copying |", "|---|---|---|---|---|"]
    for name, s in result["backbones"].items():
        lines.append(f"| {name} | {s['generated']['median']:.4g} | {s['heldout']['median']:.4g} | "
                     f"{s['ratio_of_medians']:.3f} | {s['copying_flag']} |")
    lines += ["", *(f"- grid ({n}): `{s['grid']}`" for n, s in result["backbones"].items()),
              f"- distance plot: `{result['distance_plot']}`"]
    create_markdown_artifact(key=f"memorization-{slug(run_name)}", markdown="\n".join(lines),
                             description="D accuracy and nearest-neighbour copy check")


# --------------------------------------------------------------------------- flows


@flow(name="train-dataset-classifier")
def dataset_classifier_flow(run: str, eval_overrides: dict[str, Any] = {}) -> str | None:  # noqa: B006
    """Train (or reuse) the dataset classifier used as the IS/FID feature extractor."""
    return dataset_classifier_task(run_config_task(run, dict(eval_overrides or {})))


@flow(name="evaluate-biggan")
def evaluate_biggan_flow(run: str, eval_overrides: dict[str, Any] = {}) -> dict:  # noqa: B006
    """Evaluate the run's checkpoints that are not yet in its metrics history; redraw the plot."""
    logger = get_run_logger()
    config = run_config_task(run, dict(eval_overrides or {}))
    pending = pending_checkpoints_task(run)
    logger.info("%s: %d checkpoint(s) to evaluate", run, len(pending))
    records = []
    if pending:
        classifier = dataset_classifier_task(config)
        for checkpoint in pending:
            record = evaluate_checkpoint_task(run, checkpoint, classifier, config)
            record_history_task(run, record)
            logger.info("%s: %s", record["checkpoint"], {k: round(v, 3) for k, v in record["metrics"].items()})
            records.append(record)
    plot = plot_history_task(run)
    publish_evaluation(config.name, records, plot)
    return {"run": run, "evaluated": [r["checkpoint"] for r in records], "records": records,
            "history": RunStore(run).history.loc.uri, "plot": plot}


@flow(name="truncation-curve")
def truncation_curve_flow(run: str, checkpoint: str | None = None,
                          eval_overrides: dict[str, Any] = {}) -> dict:  # noqa: B006
    """Truncation sweep of a checkpoint (default: the one the run marked for evaluation)."""
    config = run_config_task(run, dict(eval_overrides or {}))
    classifier = dataset_classifier_task(config)
    chosen = checkpoint_to_evaluate_task(run, checkpoint)
    result = truncation_curve_task(run, chosen, classifier, config)
    publish_truncation(config.name, result)
    return result


@flow(name="memorization-check")
def memorization_flow(run: str, checkpoint: str | None = None,
                      eval_overrides: dict[str, Any] = {}) -> dict:  # noqa: B006
    """D accuracy and nearest neighbours of a checkpoint (default: the one marked for evaluation)."""
    config = run_config_task(run, dict(eval_overrides or {}))
    chosen = checkpoint_to_evaluate_task(run, checkpoint)
    result = memorization_task(run, chosen, config)
    publish_memorization(config.name, result)
    return result
