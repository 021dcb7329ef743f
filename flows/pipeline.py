"""Prefect flow `pipeline`: shard-dataset -> train-biggan -> {evaluate, truncation-curve,
memorization-check} in parallel, each node writing into the run directory and publishing
Prefect artifacts. `biggan demo` runs it on the embedded digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from biggan.config import ShardConfig
from biggan.eval import history
from biggan.runs import RunStore
from flows.artifacts import publish_evaluation, publish_memorization, publish_truncation, slug
from flows.evaluate import (
    dataset_classifier_task,
    memorization_task,
    quality_check_task,
    run_config_task,
    truncation_curve_task,
)
from flows.shard import shard_dataset_flow
from flows.train import train_biggan_flow


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


# Threads: the evaluation nodes are independent readers of one checkpoint.
@flow(name="pipeline", task_runner=ThreadPoolTaskRunner(max_workers=4))
def pipeline_flow(
    preset: str = "digits32",
    overrides: dict[str, Any] = {},  # noqa: B006 (Prefect form default); dotted config keys
    source: str = "imagenet",  # "imagenet" (folder tree) or "jft" (manifest)
    root: str | None = None,  # imagenet root with train/ and val/; None = skip sharding
    manifest: str | None = None,  # jft manifest (train split only)
    shards: str | None = None,  # shard root: <shards>/train and /val (folder or URI); None = the preset's
    demo_data: str | None = None,  # write the embedded digits here first and shard them
    num_workers: int | None = None,
    use_gpu: bool | None = None,
    samples_per_shard: int = 1000,
    class_agreement: bool = False,  # also run the quality check (independent judge + FID drop)
    name: str | None = None,  # run name; None = a new numbered one
    store: str | None = None,  # run store (local folder or URI); None = the preset's run_root
) -> dict:
    """Shard -> train -> {evaluate, truncation curve, memorization check} on one run directory."""
    logger = get_run_logger()
    if demo_data is not None:
        root = write_demo_data_task(demo_data)
        source = "imagenet"
    from biggan.presets import get_preset

    resolution = get_preset(preset).model.resolution
    if "model.resolution" in overrides:
        resolution = int(overrides["model.resolution"])
    shard_root = (shards or get_preset(preset).data.train_shards.rsplit("/", 1)[0]).rstrip("/")
    if root is not None or manifest is not None:
        splits = ("train", "val") if source == "imagenet" else ("train",)
        for split in splits:
            shard_dataset_flow(ShardConfig(source=source, root=root, manifest=manifest, split=split,
                                           out=f"{shard_root}/{split}", resolution=resolution,
                                           samples_per_shard=samples_per_shard))
    trained = train_biggan_flow(preset=preset, overrides=dict(overrides or {}), shards=shard_root,
                                num_workers=num_workers, use_gpu=use_gpu, name=name, store=store)
    run, checkpoint_uri = trained["run"], trained["checkpoint"]
    if checkpoint_uri is None:
        raise RuntimeError(f"training wrote no checkpoint in {run}")
    checkpoint = checkpoint_uri.rstrip("/").rsplit("/", 1)[-1]
    config = run_config_task(run, {})
    classifier = dataset_classifier_task(config)  # before the parallel nodes, which all need it

    evaluated = evaluate_pending_task.submit(run, classifier, config)
    curve = truncation_curve_task.submit(run, checkpoint, classifier, config.eval)
    memo = memorization_task.submit(run, checkpoint, config.eval)
    quality = quality_check_task.submit(run, checkpoint, classifier) if class_agreement else None
    evaluated, curve, memo = evaluated.result(), curve.result(), memo.result()
    quality = None if quality is None else quality.result()

    publish_evaluation(config.name, evaluated["records"], evaluated["plot"])
    publish_truncation(config.name, curve)
    publish_memorization(config.name, memo)
    store = RunStore(run)
    latest = store.evaluations.results(config.eval.metrics, config.eval.truncation).get(checkpoint)
    summary = {
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
    create_markdown_artifact(
        key=f"pipeline-{slug(config.name)}",
        markdown="# Pipeline summary\n\n" + "\n".join(f"- {k}: `{v}`" for k, v in summary.items()),
        description="Where everything the pipeline wrote lives",
    )
    logger.info("pipeline done: %s", summary)
    return summary
