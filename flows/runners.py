"""Where a flow's tasks run: threads of this process, or Ray tasks (prefect-ray) on a Ray cluster.

One rule for the evaluation nodes (evaluate-biggan's scoring, truncation-curve, memorization-check
and the pipeline's nodes), whether the `biggan` command, a flow call or a prefect.yaml deployment
started them:

- the cluster: the flow's `ray_address` parameter, else RAY_ADDRESS, else the Ray this process
  has already joined (the pipeline's training starts or joins one), else none: threads here;
- on a cluster, each node is one Ray task asking for `CPUS_PER_TASK` CPU (Ray then runs it with
  that many OpenMP threads: its own process, its own torch thread count) and one GPU when
  `eval.device` is `auto` or `cuda[:N]` and the cluster has GPUs (the task sees it as cuda:0).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

CPUS_PER_TASK = 1.0  # each node's CPU share on Ray


def ray_address_of(ray_address: str | None) -> str | None:
    """The cluster the nodes run on: the parameter, else RAY_ADDRESS, else the Ray this process
    joined (its GCS address), else None (threads)."""
    if ray_address:
        return ray_address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    ray = sys.modules.get("ray")  # not imported: not joined either, and importing it costs seconds
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    return None


def gpus_per_task(device: str, cluster_gpus: float) -> float:
    """GPUs a node asks Ray for: one when `eval.device` may use a GPU and the cluster has one."""
    spec = device.strip().lower()
    wants_gpu = spec == "auto" or spec.startswith("cuda")
    return 1.0 if wants_gpu and cluster_gpus >= 1 else 0.0


@dataclass(frozen=True)
class Placement:
    """Where one flow run's evaluation nodes run (`place_nodes`)."""

    ray_address: str | None  # the cluster they run on as Ray tasks; None = threads of this process
    cpus: float  # CPUs each Ray task asks for
    gpus: float  # GPUs each Ray task asks for

    def describe(self) -> str:
        if self.ray_address is None:
            return "threads of this process"
        return f"Ray tasks on {self.ray_address} ({self.cpus:g} CPU, {self.gpus:g} GPU each)"


def place_nodes(ray_address: str | None, device: str) -> Placement:
    """Apply the rule (module doc): join the cluster if there is one and size the tasks for it."""
    address = ray_address_of(ray_address)
    if address is None:
        return Placement(None, 0.0, 0.0)
    from biggan.train.launcher.cluster import join_ray

    resources = join_ray(address)
    return Placement(address, CPUS_PER_TASK, gpus_per_task(device, resources.get("GPU", 0.0)))


class Nodes:
    """Submits tasks to the runner of a `run_nodes` block, as `task.submit` would to the flow's own."""

    def __init__(self, runner, placement: Placement):
        self.runner = runner
        self.placement = placement

    def submit(self, task, *args: Any, wait_for=None, **kwargs: Any):
        """`task.submit(*args, **kwargs)` on this block's runner: a PrefectFuture."""
        from prefect.utilities.callables import get_call_parameters

        parameters = get_call_parameters(task.fn, args, kwargs)
        if self.placement.ray_address is None:
            return self.runner.submit(task, parameters, wait_for)
        with ray_task_options(num_cpus=self.placement.cpus, num_gpus=self.placement.gpus):
            return self.runner.submit(task, parameters, wait_for)


@contextlib.contextmanager
def run_nodes(placement: Placement, threads: int) -> Iterator[Nodes]:
    """A task runner for the nodes of `placement` (at most `threads` at a time when on threads)."""
    runner = _runner(placement.ray_address, threads)
    with runner:
        yield Nodes(runner, placement)


def task_runner(ray_address: str | None, threads: int):
    """RayTaskRunner on `ray_address` (joined first), else a pool of `threads` threads: for a
    subflow's `with_options(task_runner=...)`; submit inside `ray_task_options()`."""
    if ray_address:
        from biggan.train.launcher.cluster import join_ray

        join_ray(ray_address)
    return _runner(ray_address, threads)


def _runner(ray_address: str | None, threads: int):
    if ray_address:
        from prefect_ray import RayTaskRunner

        # Joined already (join_ray): the runner uses that connection and leaves it open.
        return RayTaskRunner(address=ray_address)
    return ThreadPoolTaskRunner(max_workers=max(1, threads))


@contextlib.contextmanager
def ray_task_options(**options: Any) -> Iterator[None]:
    """Ray options of the tasks submitted inside (`num_cpus`, `num_gpus`, ...), plus what every
    Ray task of a flow needs: the flow's Prefect API, and flows loaded from their files."""
    from prefect_ray.context import remote_options

    _pickle_flow_files_by_value()
    api = _prefect_api_url()
    if api:
        # A Ray worker without PREFECT_API_URL would start a temporary Prefect server of its own
        # (seen here: the driver's temporary server is not in the context prefect-ray ships).
        options["runtime_env"] = {"env_vars": {"PREFECT_API_URL": api}}
    with remote_options(**options):
        yield


def _prefect_api_url() -> str | None:
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    context = FlowRunContext.get()
    if context is not None and context.client is not None:
        return str(context.client.api_url).rstrip("/")
    return PREFECT_API_URL.value() or None


def _pickle_flow_files_by_value() -> None:
    """prefect.yaml's entrypoints are file paths: Prefect runs flows/evaluate.py as a module named
    `evaluate`, which a Ray worker cannot import, and the flow object travels with every Ray
    task (prefect-ray ships the flow run's context). Such modules go by value instead."""
    import ray.cloudpickle

    folder = Path(__file__).resolve().parent
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (path and Path(path).resolve().parent == folder and name != __package__
                and not name.startswith(f"{__package__}.")):
            ray.cloudpickle.register_pickle_by_value(module)


def retry_unless_user_error(task, task_run, state) -> bool:
    """`retry_condition_fn` of every retried task: a user's error (a bad path, bad data, a bad
    setting, a damaged file) fails at once; retrying would only repeat the same message."""
    from biggan.errors import UserError

    return not isinstance(state.data, UserError)
