"""Prefect flows of the evaluation area:

- `evaluate-biggan` (scheduled and triggered in prefect.yaml): score every checkpoint of a run
  that its metrics have not scored yet, record them, redraw the FID/IS-over-iterations plot.
- `truncation-curve`: Section 3.1's IS-vs-FID sweep and Table 2's operating points.
- `memorization-check`: D accuracy on real train vs held-out images (Section 4.2) and nearest
  neighbours (Appendix A).
- `train-dataset-classifier`: the feature extractor trained on the dataset's own shards.

Every task calls a biggan.eval function; no tensor work happens here. On a Ray cluster (the
`ray_address` parameter, else RAY_ADDRESS) the scoring, truncation and memorization tasks run as
Ray tasks that ask for a GPU when `eval.device` may use one and the cluster has GPUs
(flows/runners.py); the dataset classifier trains in the flow's own process.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE

from biggan.config import EvalConfig, ExperimentConfig
from biggan.eval import history
from biggan.eval.memorization import memorization_check
from biggan.eval.session import ensure_classifier
from biggan.eval.truncation import truncation_curve_of_checkpoint
from biggan.runs import RunStore
from biggan.runs.opened import with_eval
from biggan_flows.artifacts import publish_evaluation, publish_memorization, publish_truncation
from biggan_flows.labels import for_run, label_flow_run, run_tags
from biggan_flows.params import EvalOverrides, as_eval_overrides
from biggan_flows.runners import place_nodes, retry_unless_user_error, run_nodes

# Tasks are NO_CACHE: each underlying function is idempotent on disk instead (the classifier is
# reused from its fingerprint-keyed folder, reference statistics from the cache, scored
# checkpoints from the metric histories), which survives Prefect server restarts and notices
# deleted outputs, unlike a Prefect result cache.


@task(cache_policy=NO_CACHE)
def run_config_task(run: str, eval_overrides: dict[str, Any]) -> ExperimentConfig:
    """The run's options.json with eval overrides applied."""
    cfg = ExperimentConfig.model_validate(RunStore(run).read_options())
    return with_eval(cfg, eval_overrides or None)


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def dataset_classifier_task(config: ExperimentConfig) -> str | None:
    """Train the dataset classifier once per shard set (cached by fingerprint); None if unused."""
    from biggan.sampling.device import resolve_device

    trained = ensure_classifier(config, resolve_device(config.eval.device))
    if trained is None:
        return None
    get_run_logger().info("dataset classifier %s (%s): train acc %.3f, val acc %s", trained.path,
                          "reused" if trained.cached else "trained", trained.train_accuracy, trained.val_accuracy)
    return str(trained.path)


@task(cache_policy=NO_CACHE)
def checkpoint_to_evaluate_task(run: str, checkpoint: str | None) -> str:
    """The checkpoint asked for, else the one the run marked for evaluation (name)."""
    store = RunStore(run).require()
    return store.checkpoint(checkpoint).name if checkpoint else store.checkpoint_to_evaluate().name


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def score_checkpoint_task(run: str, checkpoint: str, classifier: str | None, eval_cfg: EvalConfig) -> dict:
    """eval.metrics of one checkpoint's EMA G (standing stats), recorded in the run's metric histories."""
    return history.score_checkpoint(RunStore(run), checkpoint, eval_cfg, classifier)


@task(cache_policy=NO_CACHE)
def plot_history_task(run: str) -> str | None:
    """Redraw the run's metrics_history.png."""
    plot = history.plot_history(RunStore(run))
    return None if plot is None else plot.uri


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def truncation_curve_task(run: str, checkpoint: str, classifier: str | None, eval_cfg: EvalConfig) -> dict:
    """Sweep truncation thresholds; write <run>/truncation/."""
    return truncation_curve_of_checkpoint(RunStore(run), checkpoint, eval_cfg, classifier)


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def memorization_task(run: str, checkpoint: str, eval_cfg: EvalConfig) -> dict:
    """D accuracy on real train vs held-out images and class-wise nearest neighbours; <run>/memorization/."""
    return memorization_check(RunStore(run), checkpoint, eval_cfg)


@task(cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_unless_user_error)
def quality_check_task(run: str, checkpoint: str, classifier: str | None) -> dict:
    """Class agreement (independent judge) and the FID drop from the untrained G; <run>/quality.json."""
    from biggan.eval.agreement import quality_check, write_quality

    store = RunStore(run)
    result = quality_check(store, checkpoint, classifier)
    write_quality(store, result)
    return result


def score_pending(run: str, config: ExperimentConfig, ray_address: str | None = None) -> dict:
    """The evaluate node of the evaluate-biggan flow: watch the run, score what is pending, one
    task per checkpoint (one at a time on threads: each uses every core; in parallel on Ray)."""
    logger = get_run_logger()
    store = RunStore(run)
    ecfg = config.eval
    store.evaluations.watch(ecfg.metrics, ecfg.truncation)  # from now on pruning keeps unscored checkpoints
    pending = [info.name for info in history.pending_checkpoints(store, ecfg.metrics, ecfg.truncation)]
    logger.info("%s: %d checkpoint(s) to evaluate (%s)", run, len(pending), ", ".join(ecfg.metrics))
    records = []
    if pending:
        classifier = dataset_classifier_task(config)
        placement = place_nodes(ray_address, ecfg.device)
        logger.info("scoring on %s", placement.describe())
        with run_nodes(placement, threads=1) as nodes:
            futures = [nodes.submit(score_checkpoint_task, run, name, classifier, ecfg) for name in pending]
            for future in futures:
                record = future.result()
                logger.info("%s: %s", record["checkpoint"], {k: round(v, 3) for k, v in record["metrics"].items()})
                records.append(record)
    return {"records": records, "plot": plot_history_task(run)}


@flow(name="train-dataset-classifier", flow_run_name=for_run("dataset-classifier"))
def dataset_classifier_flow(run: str, eval_overrides: EvalOverrides = EvalOverrides()) -> str | None:  # noqa: B008
    """Train (or reuse) the dataset classifier used as the IS/FID feature extractor."""
    return dataset_classifier_task(run_config_task(run, as_eval_overrides(eval_overrides).to_dict()))


@flow(name="evaluate-biggan", flow_run_name=for_run("evaluate"))
def evaluate_biggan(run: str, store: str | None = None,
                    eval_overrides: EvalOverrides = EvalOverrides(),  # noqa: B008 (Prefect form default)
                    ray_address: str | None = None) -> dict:
    """Evaluate the run's checkpoints that are not yet scored; redraw the plot. A run that does
    not exist yet (a schedule set up before training starts) is a no-op, not a failure.

    Args:
        run: the run's location (folder or URI); with `store`, also its name there or `latest`
        store: run store that `run` is looked up in (name or `latest`); empty = `run` is a location
        eval_overrides: changes to the run's own evaluation settings; empty fields keep them
        ray_address: score checkpoints as Ray tasks on this cluster; empty = RAY_ADDRESS, else threads here
    """
    logger = get_run_logger()
    found = _find_run(run, store)
    if found is None:
        where = f"{run!r} in store {store}" if store else run
        logger.info("run %s does not exist yet: nothing to evaluate", where)
        return {"run": run, "evaluated": [], "records": [], "plot": None}
    run = found.uri
    config = run_config_task(run, as_eval_overrides(eval_overrides).to_dict())
    label_flow_run(f"evaluate-{config.name}", run_tags(config.preset, config.name))
    with tags(*run_tags(config.preset, config.name)):
        scored = score_pending(run, config, ray_address)
    publish_evaluation(config.name, scored["records"], scored["plot"])
    return {"run": run, "evaluated": [r["checkpoint"] for r in scored["records"]], "records": scored["records"],
            "plot": scored["plot"]}


def _find_run(run: str, store: str | None) -> RunStore | None:
    """The run `run` names (a location; with `store`, also a name or `latest`), or None."""
    if store is None:
        found = RunStore(run)
        return found if found.exists() else None
    from biggan.runs import RunNotFound
    from biggan.runs.naming import find_run

    try:
        return find_run(store, run)
    except RunNotFound:
        return None


evaluate_biggan_flow = evaluate_biggan  # the name the CLI and tests import


@flow(name="truncation-curve", flow_run_name=for_run("truncation-curve"))
def truncation_curve_flow(run: str, checkpoint: str | None = None,
                          eval_overrides: EvalOverrides = EvalOverrides(),  # noqa: B008 (Prefect form default)
                          ray_address: str | None = None) -> dict:
    """Truncation sweep of a checkpoint (default: the one the run marked for evaluation).

    Args:
        run: the run's location (folder or URI)
        checkpoint: checkpoint name or iteration; empty = the one the run marked for evaluation
        eval_overrides: changes to the run's own evaluation settings; empty fields keep them
        ray_address: sweep as a Ray task on this cluster; empty = RAY_ADDRESS, else in this process
    """
    config = run_config_task(run, as_eval_overrides(eval_overrides).to_dict())
    classifier = dataset_classifier_task(config)
    chosen = checkpoint_to_evaluate_task(run, checkpoint)
    with run_nodes(place_nodes(ray_address, config.eval.device), threads=1) as nodes:
        result = nodes.submit(truncation_curve_task, run, chosen, classifier, config.eval).result()
    publish_truncation(config.name, result)
    return result


@flow(name="memorization-check", flow_run_name=for_run("memorization-check"))
def memorization_flow(run: str, checkpoint: str | None = None,
                      eval_overrides: EvalOverrides = EvalOverrides(),  # noqa: B008 (Prefect form default)
                      ray_address: str | None = None) -> dict:
    """D accuracy and nearest neighbours of a checkpoint (default: the one marked for evaluation).

    Args:
        run: the run's location (folder or URI)
        checkpoint: checkpoint name or iteration; empty = the one the run marked for evaluation
        eval_overrides: changes to the run's own evaluation settings; empty fields keep them
        ray_address: check as a Ray task on this cluster; empty = RAY_ADDRESS, else in this process
    """
    config = run_config_task(run, as_eval_overrides(eval_overrides).to_dict())
    chosen = checkpoint_to_evaluate_task(run, checkpoint)
    with run_nodes(place_nodes(ray_address, config.eval.device), threads=1) as nodes:
        result = nodes.submit(memorization_task, run, chosen, config.eval).result()
    publish_memorization(config.name, result)
    return result
