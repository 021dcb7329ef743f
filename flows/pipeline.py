"""Prefect flow `pipeline`: shard-dataset -> train-biggan -> {evaluate, truncation-curve,
memorization-check} in parallel, each node writing into the run directory and publishing
Prefect artifacts. `biggan demo` runs it on the embedded digits.

The evaluation nodes run where flows/runners.py places them: as Ray tasks on the cluster the
run trained on (`cluster.ray_address`, RAY_ADDRESS, or the Ray that training started here), each
in its own process with its own CPU (and a GPU when the cluster has them); with no Ray (training
in this process, `num_workers=0`) as threads of this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE

from biggan.config import ShardConfig
from biggan.eval import history
from biggan.runs import RunStore
from biggan_flows.artifacts import (
    key_value_table,
    publish_evaluation,
    publish_memorization,
    publish_quality,
    publish_truncation,
    rounded,
    slug,
)
from biggan_flows.evaluate import (
    dataset_classifier_task,
    memorization_task,
    quality_check_task,
    run_config_task,
    truncation_curve_task,
)
from biggan_flows.labels import label_flow_run, pipeline_run_name, run_tags
from biggan_flows.params import ExperimentOverrides, PresetName, as_overrides
from biggan_flows.runners import place_nodes, run_nodes
from biggan_flows.shard import shard_dataset_flow
from biggan_flows.train import train_biggan_flow


@task(cache_policy=NO_CACHE)
def write_demo_data_task(out: str) -> str:
    """Write the embedded digits as an ImageNet-style tree (idempotent); return its root."""
    from biggan.data.demo import write_demo_data

    return str(write_demo_data(Path(out)).imagenet_root)


@task(cache_policy=NO_CACHE)
def evaluate_pending_task(run: str, classifier: str | None, config) -> dict:
    """The evaluate node: score unevaluated checkpoints, record, redraw the plot (what the
    evaluate-biggan flow does, as one task so it can run beside the other nodes)."""
    store, ecfg = RunStore(run), config.eval
    store.evaluations.watch(ecfg.metrics, ecfg.truncation)
    records = [history.score_checkpoint(store, info.name, ecfg, classifier)
               for info in history.pending_checkpoints(store, ecfg.metrics, ecfg.truncation)]
    plot = history.plot_history(store)
    return {"records": records, "plot": None if plot is None else plot.uri}


@flow(name="pipeline", flow_run_name=pipeline_run_name)
def pipeline(
    preset: PresetName = "digits32",
    overrides: ExperimentOverrides = ExperimentOverrides(),  # noqa: B008 (Prefect form default)
    source: Literal["imagenet", "jft"] = "imagenet",
    root: str | None = None,
    manifest: str | None = None,
    shards: str | None = None,
    demo_data: str | None = None,
    num_workers: int | None = None,
    use_gpu: bool | None = None,
    samples_per_shard: int = 1000,
    class_agreement: bool = False,
    name: str | None = None,
    store: str | None = None,
) -> dict:
    """Shard -> train -> {evaluate, truncation curve, memorization check} on one run directory.

    Args:
        preset: named experiment (biggan.presets)
        overrides: changes to the preset; empty fields keep the preset's values
        source: imagenet (folder tree) or jft (manifest)
        root: imagenet root with train/ and val/ to shard first; empty = use existing shards
        manifest: jft manifest to shard first (train split only)
        shards: shard root, <shards>/train and <shards>/val (folder or URI); empty = the preset's
        demo_data: write the embedded digits here first and shard them
        num_workers: Ray Train workers (0 = in this process); empty = the preset's
        use_gpu: one GPU per worker; empty = the preset's
        samples_per_shard: samples per tar when sharding
        class_agreement: also run the quality check (independent judge + FID drop) and publish its verdict
        name: run name; empty = a new numbered one
        store: run store (local folder or URI); empty = the preset's run_root
    """
    logger = get_run_logger()
    overrides = as_overrides(overrides)
    with tags(*run_tags(preset, name)):
        return _pipeline(logger, preset, overrides, source, root, manifest, shards, demo_data, num_workers,
                         use_gpu, samples_per_shard, class_agreement, name, store)


def _pipeline(logger, preset, overrides, source, root, manifest, shards, demo_data, num_workers, use_gpu,
              samples_per_shard, class_agreement, name, store) -> dict:
    """The body of `pipeline`: states are passed on as `wait_for`, so the run graph has edges
    shard -> train -> every evaluation node, not just an order in time."""
    if demo_data is not None:
        root = write_demo_data_task(demo_data)
        source = "imagenet"
    from biggan.presets import get_preset

    resolution = int(overrides.get("model.resolution") or get_preset(preset).model.resolution)
    shard_root = (shards or get_preset(preset).data.train_shards.rsplit("/", 1)[0]).rstrip("/")
    sharded = []
    if root is not None or manifest is not None:
        splits = ("train", "val") if source == "imagenet" else ("train",)
        for split in splits:
            with tags(*run_tags(split=split)):
                sharded.append(shard_dataset_flow(
                    ShardConfig(source=source, root=root, manifest=manifest, split=split,
                                out=f"{shard_root}/{split}", resolution=resolution,
                                samples_per_shard=samples_per_shard),
                    return_state=True))
    for state in sharded:
        state.result()  # a failed shard set stops the pipeline here, with its own error
    trained_state = train_biggan_flow(preset=preset, overrides=overrides, shards=shard_root,
                                      num_workers=num_workers, use_gpu=use_gpu, name=name, store=store,
                                      wait_for=sharded, return_state=True)
    trained = trained_state.result()
    run, checkpoint_uri = trained["run"], trained["checkpoint"]
    if checkpoint_uri is None:
        raise RuntimeError(f"training wrote no checkpoint in {run}")
    checkpoint = checkpoint_uri.rstrip("/").rsplit("/", 1)[-1]
    config = run_config_task(run, {}, wait_for=[trained_state])
    label_flow_run(f"pipeline-{config.name}", run_tags(config.preset, config.name))
    with tags(*run_tags(run=config.name)):
        evaluated, curve, memo, quality = _evaluation_nodes(run, checkpoint, config, trained_state,
                                                            class_agreement)

    publish_evaluation(config.name, evaluated["records"], evaluated["plot"])
    publish_truncation(config.name, curve)
    publish_memorization(config.name, memo)
    met = None if quality is None else publish_quality(config.name, quality, memo["copying_flag"])
    summary = _summary(run, checkpoint_uri, checkpoint, config, trained, evaluated, curve, memo, quality)
    publish_summary(config.name, summary, met)
    logger.info("pipeline done: run %s, checkpoint %s, IS/FID %s", run, checkpoint,
                {k: round(v, 3) for k, v in (summary["metrics"] or {}).items()})
    return summary


def _evaluation_nodes(run: str, checkpoint: str, config, trained_state, class_agreement: bool):
    """The evaluation nodes in parallel, each waiting on the training run (a graph edge)."""
    after = [trained_state]
    classifier = dataset_classifier_task(config, wait_for=after)  # before the parallel nodes, which all need it
    placement = place_nodes(config.cluster.ray_address, config.eval.device)
    get_run_logger().info("evaluation nodes: %s", placement.describe())
    with run_nodes(placement, threads=4) as nodes:
        evaluated = nodes.submit(evaluate_pending_task, run, classifier, config, wait_for=after)
        curve = nodes.submit(truncation_curve_task, run, checkpoint, classifier, config.eval, wait_for=after)
        memo = nodes.submit(memorization_task, run, checkpoint, config.eval, wait_for=after)
        quality = None
        if class_agreement:
            # After evaluate: it reads the final FID evaluate recorded instead of computing it again.
            # Submitted once evaluate is done, so it never holds a Ray CPU while it waits.
            evaluated.wait()
            quality = nodes.submit(quality_check_task, run, checkpoint, classifier, wait_for=[*after, evaluated])
        return (evaluated.result(), curve.result(), memo.result(), None if quality is None else quality.result())


def _summary(run, checkpoint_uri, checkpoint, config, trained, evaluated, curve, memo, quality) -> dict:
    store = RunStore(run)
    latest = store.evaluations.results(config.eval.metrics, config.eval.truncation).get(checkpoint)
    return {
        "run": run,
        "checkpoint": checkpoint_uri,
        "metrics": None if latest is None else latest["metrics"],
        "operating_points": curve["operating_points"],
        "d_accuracy": {k: memo["d_accuracy"][f"{k}_real"]["accuracy"] for k in ("train", "val")}
        | {"generated": memo["d_accuracy"]["generated"]["accuracy"]},
        "copying_flag": memo["copying_flag"],
        "sample_sheets": [loc.uri for loc in store.sample_sheets()],
        "truncation_plot": curve["plot"],
        "truncation_table": curve["csv"],
        "nn_grids": [s["grid"] for s in memo["backbones"].values()],
        "metrics_history": store.evaluations.history("fid").loc.uri,
        "metrics_plot": evaluated["plot"],
        "dashboard_url": trained.get("dashboard_url"),
        "quality": quality,
    }


def publish_summary(run_name: str, summary: dict, quality_met: bool | None) -> None:
    """The pipeline's summary as a rounded table: headline numbers, verdicts, where files are."""
    points = summary["operating_points"]
    values: dict[str, Any] = {"run": summary["run"], "checkpoint evaluated": summary["checkpoint"]}
    values |= {name: value for name, value in (summary["metrics"] or {}).items()}
    for key, label in (("best_fid", "best FID"), ("is_matches_val", "FID at real IS"), ("max_is", "max IS")):
        if points.get(key):
            values[f"{label}: threshold / IS / FID"] = " / ".join(
                f"{rounded(points[key][k])}" for k in ("threshold", "IS", "FID"))
    values |= {f"D accuracy ({k})": v for k, v in summary["d_accuracy"].items()}
    values["copying flag"] = summary["copying_flag"]
    if quality_met is not None:
        values["quality verdict"] = "met" if quality_met else "NOT met"
    values |= {"latest sample sheet": (summary["sample_sheets"] or [None])[-1],
               "truncation plot": summary["truncation_plot"], "metrics history": summary["metrics_history"],
               "Ray dashboard": summary["dashboard_url"]}
    key_value_table(f"pipeline-{slug(run_name)}", values, "Pipeline summary: headline numbers and where files are")


pipeline_flow = pipeline  # the name the CLI and tests import
