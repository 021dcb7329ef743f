"""Ray Train launcher: the only module of biggan that imports Ray.

`launch_training(cfg)` runs `biggan.train.loop.train` in `cluster.num_workers` TorchTrainer
workers (gloo on CPU, NCCL on GPU), or in this process when `num_workers == 0`. A range MIN-MAX is
Ray's elastic training: the group is restarted at another size as nodes go and come, and every
start resumes from the newest checkpoint in the run store (docs/elastic.md).

Storage: the run store holds everything (checkpoints, stats, marks), at a local path or a
storage URI shared by every node; Ray Train's own run folder is `<run>/ray`
(`RunConfig(storage_path=<run>, storage_filesystem=<the store's pyarrow filesystem>)`), which
Ray needs on shared storage once there is more than one node. Checkpoints are not handed to
Ray: rank 0 writes them into the run store, and a worker group that `FailureConfig` restarts
resumes from the newest intact checkpoint there, exactly as a resumed run does. (Ray's
CheckpointConfig keeps the top K by one score and cannot express "newest K + best + the one
marked for evaluation"; keeping two copies, as before, doubled every checkpoint's bytes.)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.data.verify import usable_shards
from biggan.files import source_fingerprint
from biggan.logs import log_to_console
from biggan.runs import RunNotFound, RunStore
from biggan.train.allocator import keep_freed_memory
from biggan.train.context import LocalContext
from biggan.train.launcher.cluster import connect_ray, ray_job_metadata, torch_config
from biggan.train.launcher.local_ray import worker_env as loopback_env
from biggan.train.launcher.preemption import SIGTERM_NOTICE, ray_preemption_notice, sigterm_received
from biggan.train.loop import train

log = logging.getLogger("biggan.train.launcher")

# Read by Ray Train's controller, which takes it from the driver's environment (Ray propagates a fixed list).
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


@dataclass
class TrainResult:
    run: str  # the run's location (local path or URI)
    checkpoint: str | None  # the checkpoint to evaluate (last before collapse, else newest)
    metrics: dict[str, Any] = field(default_factory=dict)  # last reported metrics
    dashboard_url: str | None = None  # Ray dashboard (None in-process or when not served)


class RayTrainContext:
    """TrainContext over ray.train: every rank reports its metrics."""

    def __init__(self):
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()

    def report(self, metrics: dict[str, Any]) -> None:
        import ray.train

        ray.train.report(_plain(metrics))

    def preemption_notice(self) -> str | None:
        """Why this group should checkpoint now: Ray drains one of its nodes, or this worker got SIGTERM
        (None: neither). Every rank calls it at every step (Ray's part is a barrier)."""
        notice = ray_preemption_notice()
        if notice is None and sigterm_received():
            return SIGTERM_NOTICE
        return notice


def package_fingerprint() -> str:
    """Fingerprint of the `biggan` package this process imported (see files.source_fingerprint)."""
    import biggan

    return source_fingerprint(Path(biggan.__file__).parent)


def check_same_code(driver_fingerprint: str | None) -> None:
    """Refuse to train on code that differs from the driver's, with a message that says what to do."""
    if driver_fingerprint is None:
        return
    mine = package_fingerprint()
    if mine != driver_fingerprint:
        raise RuntimeError(
            f"the biggan package on this worker differs from the driver's (source fingerprint "
            f"{mine[:12]} here, {driver_fingerprint[:12]} on the driver): it was edited after the "
            f"run started, or another version is installed on this node. Sync the code on every "
            f"node and start the run again; it resumes from its last checkpoint.")


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Entry point of every Ray worker: check the code and re-validate the config where they
    enter, then train."""
    torch.set_num_threads(int(loop_config.get("threads", 1)))
    # The `biggan` records as plain lines on the worker's stderr, which Ray streams to the driver:
    # rank 0's progress lines show up where the run was started (biggan/logs.py).
    log_to_console()
    _quiet_report_log()
    check_same_code(loop_config.get("code"))
    cfg = ExperimentConfig.model_validate(loop_config["config"])
    if not cfg.cluster.use_gpu:
        keep_freed_memory()  # once, where the worker process starts (biggan.train.allocator: why)
    train(cfg, RayTrainContext())


def _quiet_report_log() -> None:
    """Ray Train V2 logs every report in full at INFO (hundreds of singular values per line),
    burying the loop's progress line. The values still reach stats.jsonl and Ray's results;
    only that echo is silenced. Its logger is named after the module's file path."""
    from ray.train.v2._internal.execution import context as ray_train_context

    logging.getLogger(ray_train_context.__file__).setLevel(logging.WARNING)


def launch_training(cfg: ExperimentConfig) -> TrainResult:
    """Run the training job described by the resolved `cfg`; return where its results are."""
    # Shards are checked before they are trusted (sizes; sha256 with data.verify), before any
    # worker starts: a damaged tar is one line here, not a traceback from inside a Ray worker.
    usable_shards(cfg.data.train_shards, cfg.data.on_damaged_shard, hashes=cfg.data.verify)
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))  # before any worker: the run exists from here
    if cfg.cluster.num_workers == 0:
        device = torch.device("cuda" if cfg.cluster.use_gpu and torch.cuda.is_available() else "cpu")
        if device.type == "cpu":  # process-wide, idempotent: a caller that did not start with it gets it here
            keep_freed_memory()
        result = train(cfg, LocalContext(device))
        return TrainResult(run=store.uri, checkpoint=_to_evaluate(store), metrics=result.metrics)

    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    ray_cluster = connect_ray(cfg.cluster, ray_job_metadata(cfg))
    dashboard_url = ray_cluster.dashboard_url
    if dashboard_url:
        log.info("Ray dashboard: %s", dashboard_url)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": cfg.model_dump(mode="json"), "threads": max(1, int(cfg.cluster.cpus_per_worker)),
                           "code": package_fingerprint()},
        torch_config=torch_config("nccl" if cfg.cluster.use_gpu else "gloo", ray_cluster.loopback),
        scaling_config=scaling_config(cfg),
        run_config=RunConfig(
            name="ray",
            # Ray resolves the URI with pyarrow (credentials from each node's environment).
            storage_path=store.uri,
            # Two budgets: worker failures, and restarts after reclaims Ray was told of (a drained node).
            failure_config=FailureConfig(max_failures=cfg.cluster.max_failures,
                                         max_preemption_failures=_unlimited(cfg.cluster.max_preemptions)),
            worker_runtime_env={"env_vars": _worker_env(ray_cluster.loopback)},
        ),
    )
    with _controller_env(controller_env(cfg)):
        result = trainer.fit()
    if result.error is not None:
        status = store.read_status() or {}
        store.write_status("failed", int(status.get("iteration", 0)), cfg.train.iterations, str(result.error)[:500])
        raise RuntimeError(f"training run {store.uri} failed: {result.error}") from result.error
    return TrainResult(run=store.uri, checkpoint=_to_evaluate(store), metrics=dict(result.metrics or {}),
                       dashboard_url=dashboard_url)


def scaling_config(cfg: ExperimentConfig):
    """Ray's ScalingConfig: a fixed size, or (a range MIN-MAX) Ray's elastic scaling, which starts the
    group once MIN workers fit, grows it to MAX as nodes join (checked every cluster.resize_check_s)
    and restarts it on the workers left when nodes go, each time from the newest checkpoint."""
    from ray.train import ScalingConfig

    cluster = cfg.cluster
    size = (cluster.min_workers, cluster.max_workers) if cluster.elastic else cluster.num_workers
    return ScalingConfig(num_workers=size, use_gpu=cluster.use_gpu,
                         resources_per_worker={"CPU": cluster.cpus_per_worker},
                         placement_strategy=cluster.placement_strategy,
                         elastic_resize_monitor_interval_s=cluster.resize_check_s)


def controller_env(cfg: ExperimentConfig) -> dict[str, str]:
    """What Ray Train's controller must see in this driver's environment: for an elastic run, a short start
    timeout (cluster.start_timeout_s; an explicit RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S wins).

    Why: after a node goes, Ray's elastic policy counts the workers that fit from its autoscaling
    coordinator's view of the nodes, which Ray 2.60 refreshes every 20 s. Until then it can ask for the old
    size, with a worker on the node that is gone, and wait for that placement for the whole start timeout
    (60 s by default) before it counts again: seen on a three-node cluster, where the group went back to 2
    workers only 60 s after node 3 stopped. The policy only asks for sizes whose resources it saw, so a
    placement that does not come within seconds is that stale view; the timeout is a controller error,
    which Ray retries without limit (FailureConfig.controller_failure_limit), not a failure of the run."""
    if not cfg.cluster.elastic or START_TIMEOUT_ENV in os.environ:
        return {}
    return {START_TIMEOUT_ENV: f"{cfg.cluster.start_timeout_s:g}"}


@contextlib.contextmanager
def _controller_env(env: dict[str, str]) -> Iterator[None]:
    """Set `env` in this process while the trainer starts its controller, then put the old values back."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _unlimited(budget: int | None) -> int:
    return -1 if budget is None else budget  # Ray's "no limit"


def _worker_env(loopback: bool) -> dict[str, str]:
    """Environment the workers need from the driver (a running cluster's raylet has its own)."""
    # On a loopback cluster gloo's pair sockets are pinned to `lo` too; across machines they must not be.
    env = {**(loopback_env() if loopback else {}),
           "RAY_TRAIN_ENABLE_STATE_TRACKING": os.environ.get("RAY_TRAIN_ENABLE_STATE_TRACKING", "1"),
           # Train V2 routes a worker's print() to its logger AND, because Ray has wrapped the
           # worker's stdout, tees it to stdout too: a line printed by a library in the worker
           # would reach the driver twice. Unpatched, print() goes to stdout once and Ray streams it.
           "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    return env


def _to_evaluate(store: RunStore) -> str | None:
    try:
        return store.checkpoint_to_evaluate().uri
    except RunNotFound:
        return None


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in metrics.items()}
