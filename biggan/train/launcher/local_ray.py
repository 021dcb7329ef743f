"""A local Ray (and its Ray Train process group) with every listening socket on loopback.

Checked on Ray 2.60.0, torch 2.14.1, Linux; see docs/infra-notes.md for the measurements.

Why `ray.init(_node_ip_address="127.0.0.1")` alone binds nothing to loopback: on Linux,
`ray/_private/worker.py:init` passes `_node_ip_address` through
`ray/_private/services.py:resolve_ip_for_localhost`, which turns any localhost address into
`get_node_ip_address()`, the routable IP (192.0.2.2 here). Every component then sees a
non-loopback node IP and takes the "all interfaces" branch. `get_node_ip_address()` returns
loopback only when `ray_constants.ENABLE_RAY_CLUSTER` is false, a constant read from
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when `ray` is imported (true on Linux). `start_local_ray`
turns it off just for `ray.init`, so the node IP becomes 127.0.0.1 and each component takes
its "node IP is localhost" branch:

| component (process, source)                                  | node IP 127.0.0.1  | plain ray.init() |
|--------------------------------------------------------------|--------------------|------------------|
| GCS gRPC (gcs_server, C++ GrpcServer)                        | ::ffff:127.0.0.1   | ::               |
| raylet NodeManager + ObjectManager gRPC (raylet, C++)        | ::ffff:127.0.0.1   | ::               |
| core worker gRPC (driver, each worker and actor, C++)        | ::ffff:127.0.0.1   | ::               |
| dashboard agent gRPC, metrics_agent_port (dashboard/agent.py)| ::ffff:127.0.0.1   | ::               |
| dashboard agent metrics export (modules/reporter/reporter_agent.py) | 127.0.0.1   | 0.0.0.0          |
| dashboard agent HTTP 52365 (dashboard/http_server_agent.py)  | 127.0.0.1          | node IP + 127.0.0.1 |
| runtime env agent HTTP (_private/runtime_env/agent/main.py)  | 127.0.0.1          | node IP          |
| dashboard metrics 44227 (dashboard/head.py)                  | 127.0.0.1          | 0.0.0.0          |
| autoscaler metrics 44217 (autoscaler/v2/monitor.py)          | 127.0.0.1          | 0.0.0.0          |
| dashboard HTTP 8265 (dashboard/head.py)                      | dashboard_host     | dashboard_host   |

`::ffff:127.0.0.1` is an IPv6 socket bound to the IPv4-mapped loopback address: reachable from
this machine only. The C++ servers pick a wildcard (`::`) for a non-loopback node IP; ray-project/ray
PRs 55484 and 59852 describe binding them to the node IP, which this build does not do.

Joining such a cluster (RAY_ADDRESS=127.0.0.1:<port>) hits the same rewrite: ray.init turns
the address into <routable IP>:<port>, where nothing listens, and hangs. Connect inside
`with loopback_node_ip(): ray.init(address=...)`, or start the driver process with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (tests/support/ray_nodes.py does both ways).

Not Ray but started by Ray Train: torch's c10d TCPStore, the rendezvous store that rank 0
serves for `init_process_group` at MASTER_ADDR:MASTER_PORT. Its server binds the wildcard `::`
whatever MASTER_ADDR says (torch's TCPStore has no bind-host argument). `LoopbackTorchConfig`
(a `TorchConfig` for `TorchTrainer(torch_config=...)`) fixes that: rank 0 serves the store on a
socket it bound to 127.0.0.1 (`TCPStore(master_listen_fd=...)`, multi-tenant), and every rank's
`init_process_group(init_method="tcp://127.0.0.1:<port>")` (through Ray Train's own setup
function) finds it there; on rank 0 the multi-tenant store reuses that server. The rendezvous is
passed in the URL, so no worker's environment is changed (MASTER_ADDR/MASTER_PORT stay unset). Gloo's
pair sockets bind to the address the host name resolves to (`vm` -> 127.0.0.1 on the test
machine, so loopback either way there); GLOO_SOCKET_IFNAME=lo pins them to loopback anywhere.

Token authentication stays on: with RAY_AUTH_MODE unset, ray.init turns it on for a new local
cluster (token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, generated there
if none); an explicit RAY_AUTH_MODE=disabled is respected with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from biggan.train.launcher.lazy import lazy_classes

LOOPBACK = "127.0.0.1"
LOOPBACK_IFNAME = "lo"  # Linux loopback interface, for GLOO_SOCKET_IFNAME
logger = logging.getLogger(__name__)

# Rank 0's loopback store between the two remote calls of LoopbackTorchBackend.on_start:
# created in one call, reused by Ray Train's init_process_group in the next, then dropped.
_PENDING_STORES: dict[int, Any] = {}


def worker_env() -> dict[str, str]:
    """Environment for Ray Train workers of a loopback cluster (also set by LoopbackTorchConfig)."""
    return {"GLOO_SOCKET_IFNAME": LOOPBACK_IFNAME}


@contextlib.contextmanager
def loopback_node_ip() -> Iterator[None]:
    """Make Ray resolve this node's IP to 127.0.0.1 while the block runs (see module doc)."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # services.get_node_ip_address -> get_localhost_ip
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def start_local_ray(num_cpus: int | None = None,
                    dashboard_host: str = LOOPBACK,
                    include_dashboard: bool = True,
                    object_store_memory: int | None = None,
                    temp_dir: str | None = None,
                    runtime_env: dict[str, Any] | None = None,
                    job_config: Any = None) -> str | None:
    """Start a single-node Ray whose every port listens on loopback; return the dashboard URL.

    num_cpus: logical CPUs of the node (None: Ray counts them)
    dashboard_host: where the dashboard (8265) listens; the only non-loopback option
    include_dashboard: also start the dashboard head (the agents run either way)
    object_store_memory: bytes of shared memory for objects (None: Ray's 30% of RAM)
    temp_dir: Ray's root temp dir (None: /tmp/ray); keep it short, socket paths live in it
    runtime_env: job runtime env; worker_env() is merged into its env_vars
    job_config: ray.job_config.JobConfig of the driver's job (its metadata names it on the dashboard)
    """
    import ray
    from ray._private.worker import get_dashboard_url

    # Unset RAY_AUTH_MODE is left to ray.init, which turns token auth on for a new local
    # cluster AND refreshes the C++ config it cached at `import ray`. Setting "token" here
    # instead starts a GCS that wants a token while this driver, whose config still says
    # "disabled", sends none: "Failed to start GCS ... InvalidAuthToken".
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        logger.warning("RAY_AUTH_MODE=%s: this Ray cluster starts WITHOUT token authentication", mode)
    env = dict(runtime_env or {})
    env["env_vars"] = {**worker_env(), **env.get("env_vars", {})}
    with loopback_node_ip():
        ray.init(_node_ip_address=LOOPBACK,  # documents intent; resolved to 127.0.0.1 only inside the block
                 num_cpus=num_cpus,
                 include_dashboard=include_dashboard,
                 dashboard_host=dashboard_host,
                 object_store_memory=object_store_memory,
                 _temp_dir=temp_dir,
                 runtime_env=env,
                 job_config=job_config)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        ray.shutdown()
        raise RuntimeError(f"Ray chose node IP {node_ip}, not {LOOPBACK}: its ports would listen "
                           f"on every interface (this Ray version resolves localhost differently?)")
    url = get_dashboard_url() if include_dashboard else None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url or None


def _serve_store_on_loopback(world_size: int, timeout_s: float) -> int:
    """On rank 0: serve a multi-tenant TCPStore on a socket bound to 127.0.0.1; return its port."""
    import torch.distributed as dist

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(max(128, world_size))
    port = sock.getsockname()[1]
    # multi_tenant=True registers the server under `port` in this process, so the TCPStore
    # that init_process_group("tcp://...") creates next on rank 0 reuses it instead of binding `::`.
    # detach(): the server owns the descriptor from now on; a Python socket object would close
    # it when collected, silently killing the listener (rank 0 stopped listening in a test).
    store = dist.TCPStore(LOOPBACK, port, world_size, True, timedelta(seconds=timeout_s),
                          wait_for_workers=False, multi_tenant=True, master_listen_fd=sock.detach())
    _PENDING_STORES[port] = store
    return port


def _release_store(port: int) -> None:
    _PENDING_STORES.pop(port, None)  # the process group now holds the server


def _build_ray_classes() -> tuple[type, ...]:
    """The classes that subclass Ray's, built on first use (importing this module must not import Ray: lazy.py)."""
    import ray
    from ray.train.torch import TorchConfig
    from ray.train.torch.config import (  # private, pinned to Ray 2.60 (see module doc)
        _set_torch_distributed_env_vars,
        _setup_torch_process_group,
        _TorchBackend,
    )

    from biggan.train.launcher.preemption import install_sigterm_notice

    class LoopbackTorchBackend(_TorchBackend):
        """Ray's torch backend with the rendezvous store bound to loopback (one node only)."""

        def on_start(self, worker_group, backend_config):
            backend = backend_config.backend or "gloo"
            size = len(worker_group)
            port = worker_group.execute_single(0, _serve_store_on_loopback, world_size=size,
                                               timeout_s=backend_config.timeout_s)
            worker_group.execute(_set_torch_distributed_env_vars)  # RANK, WORLD_SIZE, ... as Ray's backend does
            ray.get([worker_group.execute_single_async(i, _setup_torch_process_group, backend=backend,
                                                       world_rank=i, world_size=size,
                                                       init_method=f"tcp://{LOOPBACK}:{port}",
                                                       timeout_s=backend_config.timeout_s)
                     for i in range(size)])
            worker_group.execute_single(0, _release_store, port=port)
            worker_group.execute(install_sigterm_notice)  # in each worker's main thread (launcher/preemption.py)

    class LoopbackTorchConfig(TorchConfig):
        """TorchConfig whose process group rendezvous listens on 127.0.0.1 only."""

        @property
        def backend_cls(self):
            return LoopbackTorchBackend

    return LoopbackTorchBackend, LoopbackTorchConfig


__getattr__ = lazy_classes(__name__, ("LoopbackTorchBackend", "LoopbackTorchConfig"), _build_ray_classes)
