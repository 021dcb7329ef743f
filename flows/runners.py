"""Task runners of the flows: threads on this machine, or Ray tasks through prefect-ray when a
Ray address is given (for shard writes, and for scoring tasks that ask for GPUs)."""

from __future__ import annotations

import contextlib

from prefect.task_runners import ThreadPoolTaskRunner


def task_runner(ray_address: str | None, threads: int):
    """RayTaskRunner on `ray_address`, else a pool of `threads` threads."""
    if ray_address:
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as err:  # an optional dependency on Python < 3.11
            raise RuntimeError("a Ray address needs the prefect-ray package (pip install prefect-ray)") from err
        return RayTaskRunner(address=ray_address)
    return ThreadPoolTaskRunner(max_workers=max(1, threads))


@contextlib.contextmanager
def remote_gpus(gpus: float):
    """Ray resources of the tasks submitted inside (a no-op for threads or zero GPUs)."""
    if not gpus:
        yield
        return
    from prefect_ray.context import remote_options

    with remote_options(num_gpus=gpus):
        yield


def retry_unless_user_error(task, task_run, state) -> bool:
    """`retry_condition_fn` of every retried task: a user's error (a bad path, bad data, a bad
    setting, a damaged file) fails at once; retrying would only repeat the same message."""
    from biggan.errors import UserError

    return not isinstance(state.data, UserError)
