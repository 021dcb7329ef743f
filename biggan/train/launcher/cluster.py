"""Which Ray a training job runs on: an initialised one, the cluster at `cluster.ray_address` /
RAY_ADDRESS, or a new local one whose every port listens on 127.0.0.1 (local_ray.py), with
Ray's token authentication left on. `join_ray` is also how the flows' Ray tasks (evaluation
nodes, shard writes) join a cluster, loopback ones included."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass

from biggan.config import ClusterConfig, ExperimentConfig


@dataclass
class RayConnection:
    dashboard_url: str | None  # where to watch the job (None when no dashboard is served)
    loopback: bool  # every node of the cluster is this machine on 127.0.0.1
    started_here: bool  # this process started the cluster (it ends with the driver)


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ray_job_metadata(cfg: ExperimentConfig) -> dict[str, str]:
    """The Ray job's metadata: the dashboard's Jobs page shows `job_name` as the job's Name."""
    return {"job_name": f"biggan-train-{cfg.name}", "run": cfg.run_uri, "preset": str(cfg.preset)}


def connect_ray(cluster: ClusterConfig, metadata: dict[str, str] | None = None) -> RayConnection:
    """Reuse an initialised Ray, else join `ray_address`/RAY_ADDRESS, else start a local Ray on
    loopback with its dashboard on `dashboard_host`. `metadata` labels the driver's Ray job
    (ray_job_metadata); it only applies when this call connects."""
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")  # Train state for the dashboard
    import ray
    from ray._private.worker import get_dashboard_url
    from ray.job_config import JobConfig

    from biggan.train.launcher.local_ray import start_local_ray

    env = {"env_vars": {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}}
    job = JobConfig(metadata=dict(metadata or {}))
    started_here = False
    if not ray.is_initialized():
        address = cluster.ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            join_ray(address, runtime_env=env, job_config=job)
        else:
            start_local_ray(dashboard_host=cluster.dashboard_host, runtime_env=env, job_config=job)
            started_here = True
    url = get_dashboard_url()
    if url and not url.startswith("http"):
        url = f"http://{url}"
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    loopback = bool(nodes) and all(_is_loopback(node.get("NodeManagerAddress", "")) for node in nodes)
    return RayConnection(dashboard_url=url or None, loopback=loopback, started_here=started_here)


def join_ray(address: str, runtime_env: dict | None = None, job_config=None) -> dict[str, float]:
    """Join the Ray cluster at `address` unless this process already joined one; return the
    cluster's resources (`ray.cluster_resources()`: CPU, GPU, memory, custom ones)."""
    import ray

    from biggan.train.launcher.local_ray import loopback_node_ip

    if not ray.is_initialized():
        # Ray rewrites a loopback address to the routable IP, where a loopback cluster does
        # not listen (local_ray.py): join it with the node IP kept on loopback.
        with loopback_node_ip() if _is_loopback(address) else contextlib.nullcontext():
            ray.init(address=address, runtime_env=runtime_env, job_config=job_config)
    return ray.cluster_resources()


def torch_config(backend: str, loopback: bool):
    """Ray Train's TorchConfig, whose start installs the SIGTERM preemption notice in every worker
    (launcher/preemption.py); on a loopback cluster, one whose rendezvous store binds 127.0.0.1 too."""
    if loopback:
        from biggan.train.launcher.local_ray import LoopbackTorchConfig

        return LoopbackTorchConfig(backend=backend)
    from biggan.train.launcher.preemption import PreemptibleTorchConfig

    return PreemptibleTorchConfig(backend=backend)
