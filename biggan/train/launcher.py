"""Ray Train launcher: the only training module that imports Ray.

`launch_training(cfg)` runs `biggan.train.loop.train` in `cluster.num_workers` TorchTrainer
workers (gloo on CPU, NCCL on GPU), or in this process when `num_workers == 0`.

Storage: `RunConfig(name=cfg.name, storage_path=run_root)`, so Ray's run folder IS the run
directory. Resume (Ray Train V2): a new trainer with the same name and storage path starts
from `ray.train.get_checkpoint()`, i.e. the latest checkpoint; `FailureConfig(max_failures)`
restarts the worker group from it after a worker dies.

Keeping "the last few + the best": Ray's CheckpointConfig keeps the top K by ONE score, which
cannot express both, and Ray refuses to resume a run whose snapshot names a checkpoint that
was deleted behind its back. So the two are kept apart: Ray persists each reported checkpoint
as `ray_checkpoint_<iteration>` and keeps only the newest (`num_to_keep=1`, scored by
iteration) for resuming; rank 0 installs the same files as `checkpoint_<iteration:08d>` (the
contract's checkpoints, what evaluation reads) and prunes those (`prune_checkpoints`: newest
`keep_checkpoints` + best by `best_metric` + the one marked for evaluation).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biggan.config import ClusterConfig, ExperimentConfig
from biggan.files import source_fingerprint
from biggan.train import checkpoint as ckpt
from biggan.train.context import LocalContext
from biggan.train.loop import train

# Test hook (used by the FailureConfig integration test): a worker of rank 0 exits hard,
# once, when it reaches this iteration; the marker file makes it fire only once per run.
FAIL_ONCE_ENV = "BIGGAN_FAIL_ONCE_AT_ITERATION"
RAY_CHECKPOINT_PREFIX = "ray_checkpoint_"  # Ray's resume copies; not listed as checkpoints


@dataclass
class TrainResult:
    run_dir: Path  # the run directory (options.json, stats.jsonl, checkpoints, samples/)
    checkpoint: Path | None  # the checkpoint to evaluate (last before collapse, else newest)
    metrics: dict[str, Any] = field(default_factory=dict)  # last reported metrics
    dashboard_url: str | None = None  # Ray dashboard (None in-process or when not served)


def resolve_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    """Absolute run root and shard paths: Ray workers chdir into their own trial folders."""
    data = cfg.data.model_copy(update={
        "train_shards": Path(cfg.data.train_shards).resolve(),
        "val_shards": None if cfg.data.val_shards is None else Path(cfg.data.val_shards).resolve(),
    })
    return cfg.model_copy(update={"run_root": Path(cfg.run_root).resolve(), "data": data})


def connect_ray(cluster: ClusterConfig) -> str | None:
    """Reuse an initialised Ray, else join `ray_address`/RAY_ADDRESS, else start a local one
    with its dashboard on `dashboard_host` (loopback by default). Returns the dashboard URL."""
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")  # Train runs on the dashboard
    import ray
    from ray._private.worker import get_dashboard_url

    if not ray.is_initialized():
        address = cluster.ray_address or os.environ.get("RAY_ADDRESS")
        env = {"env_vars": {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}}
        if address:
            ray.init(address=address, runtime_env=env)
        else:
            ray.init(include_dashboard=True, dashboard_host=cluster.dashboard_host, runtime_env=env)
    url = get_dashboard_url()
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url or None


class RayTrainContext:
    """TrainContext over ray.train: every rank reports, rank 0 attaches the checkpoint."""

    def __init__(self, run_dir: Path):
        import ray.train
        import ray.train.torch

        self.run_dir = Path(run_dir)  # where rank 0 installs the kept checkpoint_<iteration> copies
        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()
        self._restored: tempfile.TemporaryDirectory | None = None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        import ray.train

        fail_at = os.environ.get(FAIL_ONCE_ENV)
        if fail_at and self.rank == 0 and int(metrics.get("iteration", 0)) >= int(fail_at):
            marker = Path(os.environ.get(FAIL_ONCE_ENV + "_MARKER", "/tmp/biggan-fail-once"))
            if not marker.exists():
                marker.write_text(str(metrics.get("iteration")))
                os._exit(17)  # die like a killed process: no cleanup, no exception
        checkpoint = None
        name = None
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir)
            iteration = int(ckpt.read_meta(checkpoint_dir)["iteration"])
            # Our kept copy first (a crash between the two only repeats work on resume).
            copy = Path(tempfile.mkdtemp(prefix=".copy-checkpoint-", dir=self.run_dir))
            shutil.copytree(checkpoint_dir, copy, dirs_exist_ok=True)
            ckpt.install_directory(copy, self.run_dir / ckpt.checkpoint_name(iteration))
            checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir))
            name = f"{RAY_CHECKPOINT_PREFIX}{iteration:08d}"
        ray.train.report(_plain(metrics), checkpoint=checkpoint, checkpoint_dir_name=name)

    def latest_checkpoint(self) -> Path | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        self._restored = tempfile.TemporaryDirectory(prefix="biggan-restore-")
        return Path(checkpoint.to_directory(self._restored.name))


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
    _quiet_report_log()
    check_same_code(loop_config.get("code"))
    cfg = ExperimentConfig.model_validate(loop_config["config"])
    train(cfg, RayTrainContext(cfg.run_dir))


def _quiet_report_log() -> None:
    """Ray Train V2 logs every report in full at INFO (hundreds of singular values per line),
    burying the loop's progress line. The values still reach stats.jsonl and Ray's results;
    only that echo is silenced. Its logger is named after the module's file path."""
    import logging

    from ray.train.v2._internal.execution import context as ray_train_context

    logging.getLogger(ray_train_context.__file__).setLevel(logging.WARNING)


def launch_training(cfg: ExperimentConfig) -> TrainResult:
    """Run the training job described by `cfg`; return where its results are."""
    cfg = resolve_paths(cfg)
    run_dir = cfg.run_dir
    if cfg.cluster.num_workers == 0:
        device = torch.device("cuda" if cfg.cluster.use_gpu and torch.cuda.is_available() else "cpu")
        result = train(cfg, LocalContext(run_dir, device))
        return TrainResult(run_dir=run_dir, checkpoint=_to_evaluate(run_dir), metrics=result.metrics)

    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    dashboard_url = connect_ray(cfg.cluster)
    if dashboard_url:
        print(f"Ray dashboard: {dashboard_url}", flush=True)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": cfg.model_dump(mode="json"), "threads": max(1, int(cfg.cluster.cpus_per_worker)),
                           "code": package_fingerprint()},
        torch_config=TorchConfig(backend="nccl" if cfg.cluster.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.cluster.num_workers, use_gpu=cfg.cluster.use_gpu,
                                     resources_per_worker={"CPU": cfg.cluster.cpus_per_worker}),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=str(cfg.run_root),
            failure_config=FailureConfig(max_failures=cfg.cluster.max_failures),
            worker_runtime_env={"env_vars": _worker_env()},
            # Ray's copy is only for resuming: keep the newest (see module doc).
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="iteration",
                                               checkpoint_score_order="max"),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"training run {cfg.name} failed: {result.error}") from result.error
    return TrainResult(run_dir=run_dir, checkpoint=_to_evaluate(run_dir), metrics=dict(result.metrics or {}),
                       dashboard_url=dashboard_url)


def _worker_env() -> dict[str, str]:
    """Environment the workers need from the driver (a running cluster's raylet has its own)."""
    env = {"RAY_TRAIN_ENABLE_STATE_TRACKING": os.environ.get("RAY_TRAIN_ENABLE_STATE_TRACKING", "1"),
           # Train V2 routes a worker's print() to its logger AND, because Ray has wrapped the
           # worker's stdout, tees it to stdout too: every progress line reached the driver
           # twice. Unpatched, print() goes to stdout once and Ray streams it to the driver.
           "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    for key in (FAIL_ONCE_ENV, FAIL_ONCE_ENV + "_MARKER"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _to_evaluate(run_dir: Path) -> Path | None:
    try:
        return ckpt.checkpoint_to_evaluate(run_dir)
    except FileNotFoundError:
        return None


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in metrics.items()}


def experiment_from_params(preset: str, overrides: dict[str, Any] | None = None, shards: str | Path | None = None,
                           num_workers: int | None = None, use_gpu: bool | None = None) -> ExperimentConfig:
    """The `train-biggan` flow's parameters validated into one ExperimentConfig.

    `shards` is either a shard set (a folder holding dataset.json: the training split; a
    sibling `val/` is used as held-out split when present) or a root holding `train/` and
    `val/`, as written by `biggan shard`. Explicit `num_workers` / `use_gpu` win over presets.
    """
    from biggan.config import apply_overrides
    from biggan.presets import get_preset

    pairs: dict[str, Any] = dict(overrides or {})
    if shards is not None:
        root = Path(shards).resolve()
        if (root / "dataset.json").is_file():
            pairs["data.train_shards"] = str(root)
            val = root.parent / "val"
            pairs["data.val_shards"] = str(val) if (val / "dataset.json").is_file() and val != root else None
        elif (root / "train").is_dir():
            pairs["data.train_shards"] = str(root / "train")
            pairs["data.val_shards"] = str(root / "val") if (root / "val").is_dir() else None
        else:
            raise ValueError(f"shards {shards} holds neither dataset.json nor a train/ folder")
    if num_workers is not None:
        pairs["cluster.num_workers"] = num_workers
    if use_gpu is not None:
        pairs["cluster.use_gpu"] = use_gpu
    cfg = apply_overrides(get_preset(preset), pairs)
    train_shards = Path(cfg.data.train_shards)
    if not (train_shards / "dataset.json").is_file():
        raise ValueError(f"training shards {train_shards} have no dataset.json; shard the data first "
                         f"(`biggan shard ...` or the shard-dataset flow) or pass shards=")
    if cfg.cluster.use_gpu and cfg.cluster.num_workers == 0 and not torch.cuda.is_available():
        raise ValueError("use_gpu is set but no GPU is visible in this process")
    return cfg  # type: ignore[return-value]
