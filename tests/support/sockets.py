"""Who listens where: the TCP listening sockets of a set of processes, a loopback check, and
the one free-port helper of the tests (benchmarks/bench_fixtures.py has the other: benchmark
scripts run with benchmarks/ on sys.path, not the repository root, so they cannot import tests/)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psutil  # a dependency of biggan itself (its reaper), so no fallback to Ray's vendored copy

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel picks it; a server started right after takes it),
    never one this process handed out before: the kernel may pick a port again once its probe socket
    is closed, and a server given two roles on one port (SeaweedFS's master and S3 gateway were) dies
    with "address already in use"."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass(frozen=True)
class Listener:
    ip: str  # as the kernel reports it: "127.0.0.1", "::", "::ffff:127.0.0.1", ...
    port: int
    pid: int
    name: str  # process name or rewritten title ("ray::RayTrainWorker", "gcs_server", "weed")


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback (an IPv6 socket bound to ::ffff:127.x)."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def tree(pid: int) -> set[int]:
    """`pid` and all its living descendants."""
    try:
        root = psutil.Process(pid)
        return {pid} | {p.pid for p in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def marked(marker: str) -> set[int]:
    """Processes whose environment holds `marker` (a NAME=value string). Ray's processes
    inherit the environment of the process that started them, workers in their own process
    groups included; but a process that retitles itself (setproctitle: "ray::DashboardAgent")
    may have its /proc environ zeroed, so use ray_session() to find a Ray session."""
    found = set()
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        name, _, value = marker.partition("=")
        if env.get(name) == value:
            found.add(proc.pid)
    return found


def with_cmdline(fragment: str) -> set[int]:
    """Processes whose command line mentions `fragment` (e.g. a session's temp dir)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        if fragment in " ".join(proc.info.get("cmdline") or []):
            found.add(proc.pid)
    return found


def with_open_files_under(dirs: Iterable[str]) -> set[int]:
    """Processes holding a file open under one of `dirs` (Ray processes keep their logs open
    in their node's temp dir, whatever their title or environment)."""
    prefixes = tuple(str(d).rstrip("/") + "/" for d in dirs)
    found = set()
    for proc in psutil.process_iter():
        try:
            if any(f.path.startswith(prefixes) for f in proc.open_files()):
                found.add(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def ray_session(marker: str, temp_dirs: Iterable[str], roots: Iterable[int] = ()) -> set[int]:
    """Every living process of a Ray session: those carrying `marker` in their environment,
    those with a log open under one of the session's `temp_dirs`, and all their descendants
    and those of `roots`."""
    temp_dirs = list(temp_dirs)
    pids = marked(marker) | with_open_files_under(temp_dirs) | set(roots)
    for pid in list(pids):
        pids |= tree(pid)
    return pids


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Every TCP socket in LISTEN state owned by one of `pids`."""
    wanted = set(pids)
    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or conn.pid not in wanted:
            continue
        try:
            name = psutil.Process(conn.pid).name()
            cmd = psutil.Process(conn.pid).cmdline()
            title = cmd[0] if cmd and cmd[0].startswith("ray::") else name
        except psutil.Error:
            title = "?"
        out.append(Listener(conn.laddr.ip, conn.laddr.port, conn.pid, title))
    return out


def not_on_loopback(found: Iterable[Listener]) -> list[Listener]:
    return sorted((item for item in found if not is_loopback(item.ip)), key=lambda x: (x.name, x.port))
