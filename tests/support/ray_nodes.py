"""A real multi-node Ray cluster on this machine: `ray start --head` plus `ray start --address` per
worker node (two_node_cluster: one; local_cluster: any number, and nodes stopped and added mid-test).

Both raylets listen on loopback only and keep token authentication on (checked on Ray 2.60.0).
Ray rewrites 127.0.0.1 to the machine's routable IP wherever it "canonicalizes" an address
(`ray/_private/services.py:resolve_ip_for_localhost`, used for --node-ip-address, --address
and ray.init(address=...)) unless `ray_constants.ENABLE_RAY_CLUSTER` is false, which
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 sets when `ray` is imported. Hence:
- Head: plain `ray start --head --node-ip-address=127.0.0.1` with that variable set to 0.
- Worker node: the variable cannot be used (`ray start --address` then aborts: "Multi-node
  Ray clusters are not supported on Windows and OSX"), and without it both --address and
  --node-ip-address become 192.0.2.2, where nothing listens. So the worker node runs Ray's own
  `ray start` entry point with `resolve_ip_for_localhost` made to keep loopback addresses
  (WORKER_START below): the one monkeypatch here, in test support only.
- Drivers: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 too (ClusterInfo.env), else ray.init turns
  127.0.0.1:port into 192.0.2.2:port and times out.
- Each node has its own --temp-dir (`ray start` documents it as "can be specified per node");
  socket paths live under it and must stay under 108 bytes, so the dirs are short, in /tmp.
- Every port a node would take by default (6379, 8265, 10001, 52365, 44217, 44227) is a free
  one picked here, so the cluster does not collide with another Ray on the machine.
- `ray stop` is never used: it kills every Ray process on the machine, other people's too.
  Stopping kills every process of the cluster: those carrying its unique RAY_AUTH_TOKEN in
  their environment (workers in their own process groups included), those with a log open
  under its temp dirs (the agents, whose retitling zeroes their /proc environ), and their
  descendants. Agents were seen to ignore SIGTERM and outlive their raylet: SIGKILL follows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import sockets
from tests.support.sockets import free_port

# `ray start` for a worker node, with loopback addresses kept as given (see module doc).
WORKER_START = (
    "import sys\n"
    "from ray._private import services\n"
    "resolve = services.resolve_ip_for_localhost\n"
    "services.resolve_ip_for_localhost = lambda host: host if host in ('127.0.0.1', '::1') else resolve(host)\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv[0] = 'ray'\n"
    "sys.exit(main())\n"
)


@dataclass
class ClusterInfo:
    gcs_address: str  # "127.0.0.1:<port>", for ray.init(address=...) / RAY_ADDRESS
    dashboard_url: str  # head's dashboard (state API, jobs)
    head_node_id: str  # hex node ids, as ray.get_runtime_context().get_node_id() returns them
    worker_node_id: str
    head_temp_dir: Path
    worker_temp_dir: Path
    token: str  # the cluster's auth token
    env: dict[str, str] = field(default_factory=dict)  # what a driver process needs (set before `import ray`)
    marker: str = ""  # "RAY_AUTH_TOKEN=<token>": carried by every process of this cluster
    worker_node_ids: list[str] = field(default_factory=list)  # every worker node started, in order (stopped too)
    worker_temp_dirs: list[Path] = field(default_factory=list)  # theirs, in the same order
    start_worker: Callable[[], tuple[str, Path]] | None = None  # starts one more worker node (local_cluster)

    def add_node(self) -> str:
        """Start one more worker node like the others; return its node id."""
        node_id, temp_dir = self.start_worker()
        self.worker_node_ids.append(node_id)
        self.worker_temp_dirs.append(temp_dir)
        return node_id

    def stop_node(self, node_id: str, timeout: float = 10.0) -> None:
        """Stop one worker node as `ray stop` would on its machine: SIGTERM to its raylet and every process
        of the node (those with a log open under its temp dir, and their descendants), SIGKILL what is left."""
        temp_dir = self.worker_temp_dirs[self.worker_node_ids.index(node_id)]
        stop_session(None, [temp_dir], timeout)

    def driver_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A subprocess environment that connects to this cluster with `ray.init()`."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env


def _start_node(cli: list[str], args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(cli + ["start", *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=90)
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed ({done.returncode}):\n{log.read_text()[-3000:]}")


def _node_ports() -> list[str]:
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]


def _node_id(temp_dir: Path) -> str:
    """The node id of the raylet that uses `temp_dir`. Each node persists its ports in its
    session dir as files named <port name>_<node id hex> (Ray 2.60 layout); reading one is
    quicker than asking the GCS from a fresh driver process (~5 s here)."""
    found = {p.name.rsplit("_", 1)[1] for p in (temp_dir / "session_latest").glob("metrics_export_port_*")}
    if len(found) != 1:
        raise RuntimeError(f"expected one node's ports under {temp_dir}/session_latest, found {sorted(found)}")
    return found.pop()


def _self_and_ancestors() -> set[int]:
    proc = sockets.psutil.Process()
    return {proc.pid} | {parent.pid for parent in proc.parents()}


def stop_session(marker: str | None, temp_dirs: list[Path], timeout: float = 10.0) -> None:
    """SIGTERM every process of the session (sockets.ray_session; marker None: only the processes
    of `temp_dirs` and their descendants, e.g. one node), then SIGKILL what is left.
    The agents ignored SIGTERM and outlived their raylet in one run here, hence the SIGKILL."""
    deadline = time.time() + timeout
    sig = signal.SIGTERM
    spared = _self_and_ancestors()  # a caller that put the cluster's token in its own environment
    while True:
        dirs = [str(d) for d in temp_dirs]
        found = (sockets.ray_session(marker, dirs) if marker else
                 {pid for opener in sockets.with_open_files_under(dirs) for pid in sockets.tree(opener)})
        left = found - spared
        if not left:
            return
        if time.time() > deadline - timeout / 2:
            sig = signal.SIGKILL
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if time.time() > deadline:
            raise RuntimeError(f"processes of {marker} survived SIGKILL: {sorted(left)}")
        time.sleep(0.3)


@contextlib.contextmanager
def two_node_cluster(tmp_dir: Path, cpus_per_node: int = 2, object_store_mb: int = 100,
                     gpus_per_node: int = 0) -> Iterator[ClusterInfo]:
    """Start a head node and a worker node on this machine; stop both on exit, even on failure.

    tmp_dir: where the `ray start` logs go (Ray's own temp dirs are short dirs in /tmp)
    cpus_per_node: logical CPUs of each node
    object_store_mb: shared memory for objects, per node
    gpus_per_node: logical GPUs of each node (Ray schedules on them; none need be there)
    """
    with local_cluster(tmp_dir, 2, cpus_per_node, object_store_mb, gpus_per_node) as cluster:
        yield cluster


@contextlib.contextmanager
def local_cluster(tmp_dir: Path, nodes: int = 2, cpus_per_node: int = 2, object_store_mb: int = 100,
                  gpus_per_node: int = 0) -> Iterator[ClusterInfo]:
    """Start a head node and `nodes` - 1 worker nodes on this machine (ClusterInfo.add_node / stop_node
    start and stop more while it runs); stop every one of them on exit, even on failure. Arguments as
    two_node_cluster's; the worker nodes carry the custom resource `worker_node`, the head `head_node`."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    head_tmp = Path(tempfile.mkdtemp(prefix="rh-", dir="/tmp"))
    temp_dirs = [head_tmp]  # every node's, for the stop at the end
    token = uuid.uuid4().hex + uuid.uuid4().hex
    marker = f"RAY_AUTH_TOKEN={token}"
    client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
                  "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # node IP and addresses stay 127.0.0.1
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    base.update(client_env)
    common = [f"--num-cpus={cpus_per_node}", f"--num-gpus={gpus_per_node}",
              f"--object-store-memory={object_store_mb * 2**20}",
              "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    gcs_port, dashboard_port = free_port(), free_port()
    gcs_address = f"127.0.0.1:{gcs_port}"
    worker_env = {k: v for k, v in base.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}

    def start_worker() -> tuple[str, Path]:
        worker_tmp = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
        temp_dirs.append(worker_tmp)
        log = tmp_dir / ("worker.log" if len(temp_dirs) == 2 else f"worker{len(temp_dirs) - 1}.log")
        _start_node([sys.executable, "-c", WORKER_START],
                    [f"--address={gcs_address}", *common, f"--temp-dir={worker_tmp}",
                     "--resources=" + json.dumps({"worker_node": 1}), *_node_ports()], worker_env, log)
        return _node_id(worker_tmp), worker_tmp

    try:
        head_env = dict(base, AUTOSCALER_METRIC_PORT=str(free_port()), DASHBOARD_METRIC_PORT=str(free_port()))
        _start_node([sys.executable, "-m", "ray.scripts.scripts"],
                    ["--head", f"--port={gcs_port}", *common, f"--temp-dir={head_tmp}",
                     "--resources=" + json.dumps({"head_node": 1}), "--include-dashboard=true",
                     "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                     f"--ray-client-server-port={free_port()}", *_node_ports()], head_env, tmp_dir / "head.log")
        workers = [start_worker() for _ in range(nodes - 1)]
        yield ClusterInfo(gcs_address=gcs_address, dashboard_url=f"http://127.0.0.1:{dashboard_port}",
                          head_node_id=_node_id(head_tmp), worker_node_id=workers[0][0] if workers else "",
                          head_temp_dir=head_tmp, worker_temp_dir=workers[0][1] if workers else head_tmp, token=token,
                          env=dict(client_env, RAY_ADDRESS=gcs_address), marker=marker,
                          worker_node_ids=[w[0] for w in workers], worker_temp_dirs=[w[1] for w in workers],
                          start_worker=start_worker)
    finally:
        stop_session(marker, temp_dirs)
        for path in temp_dirs:
            shutil.rmtree(path, ignore_errors=True)


def kill_train_worker_on_node(node_id: str, address: str | None = None) -> int:
    """SIGKILL the Ray Train worker (actor class RayTrainWorker) alive on `node_id`; return its PID.

    Run it in a process connected to the cluster (ray.init done; the test does it from its
    driver): the state API finds the actor, and its PID is a process on this machine.
    `address` is passed to `ray.util.state.list_actors` as is.
    """
    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE"),
                                                   ("node_id", "=", node_id)])
    if len(actors) != 1:
        raise RuntimeError(f"expected one live RayTrainWorker on node {node_id}, found {actors}")
    pid = int(actors[0].pid)
    os.kill(pid, signal.SIGKILL)
    return pid
