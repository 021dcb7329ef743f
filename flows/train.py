"""Prefect flow `train-biggan`: validate parameters -> connect Ray (publish the dashboard) ->
run the Ray Train job -> return the run's location and the checkpoint to evaluate.

Every task calls a biggan.train function; no tensor work happens here.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from biggan.config import ExperimentConfig
from biggan.experiment import resolve_experiment
from biggan.train.launcher import launch_training
from biggan.train.launcher.cluster import connect_ray


@task(cache_policy=NO_CACHE)
def resolve_experiment_task(preset: str, overrides: dict[str, Any], shards: str | None,
                            num_workers: int | None, use_gpu: bool | None, name: str | None,
                            resume: str | None, store: str | None,
                            init_from: str | None = None) -> ExperimentConfig:
    """Preset + overrides + shards + workers + GPU (or the run to resume, or the run whose weights
    a new run starts from), validated into one config named for its run."""
    return resolve_experiment(preset, overrides, shards, num_workers, use_gpu, name=name, resume=resume,
                              store=store, init_from=init_from)


@task(cache_policy=NO_CACHE)
def connect_ray_task(config: ExperimentConfig) -> str | None:
    """Join or start the Ray cluster; return its dashboard URL."""
    if config.cluster.num_workers == 0:
        return None
    return connect_ray(config.cluster).dashboard_url


# No retries here: Ray's FailureConfig already restarts workers from the last checkpoint, and a
# rerun of the flow with the same name resumes from it too.
@task(cache_policy=NO_CACHE)
def train_task(config: ExperimentConfig) -> dict[str, Any]:
    """Run the Ray Train job to the end (or to a detected collapse)."""
    result = launch_training(config)
    scalars = {k: v for k, v in result.metrics.items()
               if not k.startswith("sv/") and isinstance(v, (int, float, bool))}
    return {"run": result.run, "checkpoint": result.checkpoint, "metrics": scalars,
            "dashboard_url": result.dashboard_url}


@flow(name="train-biggan")
def train_biggan_flow(preset: str = "digits32", overrides: dict[str, Any] = {},  # noqa: B006 (Prefect form default)
                      shards: str | None = None, num_workers: int | None = None,
                      use_gpu: bool | None = None, name: str | None = None, resume: str | None = None,
                      store: str | None = None, init_from: str | None = None) -> dict:
    """Train BigGAN with a preset plus overrides on Ray Train (a new run, `resume` one, or a new
    run from `init_from`'s weights); returns the run's location and the checkpoint to evaluate."""
    logger = get_run_logger()
    config = resolve_experiment_task(preset, dict(overrides or {}), shards, num_workers, use_gpu, name,
                                     resume, store, init_from)
    logger.info("run %s -> %s (%d workers, gpu=%s, %d iterations, batch %d)", config.name, config.run_uri,
                config.cluster.num_workers, config.cluster.use_gpu, config.train.iterations, config.train.batch_size)
    dashboard = connect_ray_task(config)
    if dashboard:
        logger.info("Ray dashboard: %s (Train runs appear under the Train tab)", dashboard)
        create_markdown_artifact(
            key=f"ray-dashboard-{_slug(config.name)}",
            markdown=f"# Ray dashboard\n\nRun `{config.name}`: [{dashboard}]({dashboard}) (Train tab)\n",
            description="Where to watch the Ray Train job",
        )
    result = train_task(config)
    result["dashboard_url"] = dashboard
    logger.info("finished: run %s, checkpoint to evaluate %s", result["run"], result["checkpoint"])
    create_markdown_artifact(
        key=f"train-result-{_slug(config.name)}",
        markdown=(f"# Training run `{config.name}`\n\n- run: `{result['run']}`\n"
                  f"- checkpoint to evaluate: `{result['checkpoint']}`\n"
                  + "".join(f"- {k}: {v:.4g}\n" for k, v in sorted(result["metrics"].items())
                            if isinstance(v, float))),
        description="Run directory and checkpoint to evaluate",
    )
    return result


def _slug(name: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes only."""
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in slug.split("-") if part) or "run"
