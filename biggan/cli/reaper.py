"""A watchdog that ends every process a `biggan` command started once the command is gone.

`kill -9` of `biggan train` leaves orphans: Prefect's temporary API server, and Ray's agents
(Ray's own fate-sharing ends its GCS, raylet and workers with the driver, but its dashboard
and runtime-env agents were still running 30 s later). The reaper is a separate process in
its own session (so killing the command's process group does not kill it): while the command
lives it records the command's process tree every second; when the command is gone it sends
SIGTERM to every recorded process still alive (matching pid AND start time, so a reused pid
is never hit), then SIGKILL after a grace period, and exits.

    python -m biggan.cli.reaper PID
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 1.0
GRACE_S = 5.0


def start(pid: int | None = None) -> subprocess.Popen | None:
    """Start the reaper of `pid` (default: this process); None where psutil is missing."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    return subprocess.Popen([sys.executable, "-m", "biggan.cli.reaper", str(pid or os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def watch(pid: int) -> None:
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    seen: dict[int, float] = {}  # pid -> create_time of every descendant ever seen
    while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
        try:
            for child in parent.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        time.sleep(POLL_S)
    alive = []
    for child_pid, created in seen.items():
        try:
            child = psutil.Process(child_pid)
            if abs(child.create_time() - created) < 1e-3:
                alive.append(child)
        except psutil.Error:
            continue
    for child in alive:
        _signal(child, signal.SIGTERM)
    _, still = psutil.wait_procs(alive, timeout=GRACE_S)
    for child in still:
        _signal(child, signal.SIGKILL)


def _signal(proc, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except Exception:  # noqa: BLE001 - gone already, or not ours to kill: nothing more to do
        pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
