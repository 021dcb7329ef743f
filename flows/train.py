"""Prefect flow `train-biggan`: validate parameters -> connect Ray (publish the dashboard) ->
run the Ray Train job, followed from here (progress, losses, checkpoint events, sample sheets:
flows/watch.py) -> return the run's location and the checkpoint to evaluate.

Every task calls a biggan.train function; no tensor work happens here.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from biggan.config import ExperimentConfig
from biggan.experiment import resolve_experiment
from biggan.train.launcher import launch_training
from biggan.train.launcher.cluster import connect_ray, ray_job_metadata
from biggan_flows.artifacts import key_value_table, publish_ray_dashboard, slug
from biggan_flows.labels import label_flow_run, run_tags, train_run_name
from biggan_flows.params import ExperimentOverrides, PresetName, WorkerCount, as_overrides
from biggan_flows.watch import RunWatcher


@task(cache_policy=NO_CACHE, task_run_name="resolve-{preset}")
def resolve_experiment_task(preset: str, overrides: dict[str, Any], shards: str | None,
                            num_workers: int | str | None, use_gpu: bool | None, name: str | None,
                            resume: str | None, store: str | None,
                            init_from: str | None = None) -> ExperimentConfig:
    """Preset + overrides + shards + workers + GPU (or the run to resume, or the run whose weights
    a new run starts from), validated into one config named for its run."""
    return resolve_experiment(preset, overrides, shards, num_workers, use_gpu, name=name, resume=resume,
                              store=store, init_from=init_from)


@task(cache_policy=NO_CACHE, task_run_name="connect-ray-{config.name}")
def connect_ray_task(config: ExperimentConfig) -> str | None:
    """Join or start the Ray cluster (the job named after the run); publish how to watch it."""
    if config.cluster.num_workers == 0:
        return None
    job = ray_job_metadata(config)
    connection = connect_ray(config.cluster, job)
    url = connection.dashboard_url
    if url:
        token_auth = os.environ.get("RAY_AUTH_MODE", "token").lower() == "token"
        get_run_logger().info("Ray dashboard: %s (job %s; %s)", url, job["job_name"],
                              "log in with the token `ray get-auth-token` prints" if token_auth
                              else "token authentication off")
        publish_ray_dashboard(config.name, url, job["job_name"], connection.started_here, token_auth)
    return url


# No retries here: Ray's FailureConfig already restarts workers from the last checkpoint, and a
# rerun of the flow with the same name resumes from it too.
@task(cache_policy=NO_CACHE, task_run_name="train-{config.name}")
def train_task(config: ExperimentConfig) -> dict[str, Any]:
    """Run the Ray Train job to the end (or to a detected collapse), following it from here."""
    watcher = RunWatcher(config.run_uri, config.name, config.train.iterations, get_run_logger(),
                         elastic=config.cluster.elastic)
    with watcher.running():
        result = launch_training(config)
    scalars = {k: v for k, v in result.metrics.items()
               if not k.startswith("sv/") and isinstance(v, (int, float, bool))}
    return {"run": result.run, "checkpoint": result.checkpoint, "metrics": scalars,
            "dashboard_url": result.dashboard_url, "checkpoint_events": len(watcher.events),
            "worker_events": len(watcher.worker_events), "watcher_error": watcher.failure}


DEGRADED = "Degraded"  # the name of a train-biggan run's Completed state when its watcher gave up


@flow(name="train-biggan", flow_run_name=train_run_name)
def train_biggan(preset: PresetName = "digits32", overrides: ExperimentOverrides = ExperimentOverrides(),  # noqa: B008
                 shards: str | None = None, num_workers: WorkerCount | None = None, use_gpu: bool | None = None,
                 name: str | None = None, resume: str | None = None, store: str | None = None,
                 init_from: str | None = None) -> dict | State:
    """Train BigGAN with a preset plus overrides on Ray Train (a new run, `resume` one, or a new
    run from `init_from`'s weights); returns the run's location and the checkpoint to evaluate
    (in a Completed state named Degraded when the run watcher gave up: `watcher_error` says why).

    Args:
        preset: named experiment (biggan.presets)
        overrides: changes to the preset; empty fields keep the preset's values
        shards: shard set (folder or URI with dataset.json) or a root holding train/ and val/
        num_workers: Ray Train workers, a count or a range MIN-MAX (elastic, for spot nodes; 0 = in this
            process); empty = the preset's
        use_gpu: one GPU per worker; empty = the preset's
        name: name of the new run; empty = a new number, 00007-<preset>
        resume: resume this run (name, latest, or its location) instead of starting one
        store: run store (local folder or s3:// URI); empty = the preset's run_root
        init_from: start a new run from this run's weights (name or location), fresh optimizers
    """
    logger = get_run_logger()
    config = resolve_experiment_task(preset, as_overrides(overrides).to_dotted(), shards, num_workers, use_gpu,
                                     name, resume, store, init_from)
    label_flow_run(f"train-{config.name}", run_tags(config.preset, config.name))
    logger.info("run %s -> %s (%s workers, gpu=%s, %d iterations, batch %d)", config.name, config.run_uri,
                config.cluster.num_workers, config.cluster.use_gpu, config.train.iterations, config.train.batch_size)
    with tags(*run_tags(config.preset, config.name)):
        dashboard = connect_ray_task(config)
        result = train_task(config)
    result["dashboard_url"] = dashboard
    logger.info("finished: run %s, checkpoint to evaluate %s", result["run"], result["checkpoint"])
    key_value_table(f"train-result-{slug(config.name)}",
                    {"run": result["run"], "checkpoint to evaluate": result["checkpoint"],
                     **{k: v for k, v in sorted(result["metrics"].items()) if isinstance(v, float)}},
                    f"Training run {config.name}: where it is, the checkpoint to evaluate, the last logged values")
    if result["watcher_error"]:
        # Completed, not Failed: the training itself ended well (its checkpoints and mark are in the
        # store, and the flow's result says where), so callers still get it: the CLI prints it and
        # exits 0, the pipeline goes on to its evaluation nodes (they do not wait for events), a
        # rerun would only resume a finished run. What broke is the following of the run (events
        # that trigger evaluate-biggan, progress, sheets): the state's name and message show that in
        # the UI's run list, to automations matching the name, and to `prefect flow-run inspect`.
        logger.error("run %s trained, but %s", config.name, result["watcher_error"])
        return Completed(name=DEGRADED, message=result["watcher_error"], data=result)
    return result


train_biggan_flow = train_biggan  # the name the CLI and tests import
