"""A Ray that biggan starts by itself listens on loopback only, Ray Train's process group included.

The job runs in a subprocess (tests/support/ray_loopback_job.py) with its own Ray temp dir and
a unique RAY_AUTH_TOKEN. The session's processes are found by that token in their environment
(workers Ray moved into their own process groups included), by logs open under the temp dir
(agents, whose retitling zeroes their /proc environ) and as descendants of those; the test
lists every listening socket they own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.support import sockets
from tests.support.ray_nodes import stop_session

ROOT = Path(__file__).resolve().parents[2]
# Components shown unable to bind to loopback in Ray 2.60 / torch 2.14: none once the node IP
# is 127.0.0.1 and the rendezvous store is LoopbackTorchConfig's (see biggan.train.launcher.local_ray.py).
ALLOWED_ELSEWHERE: dict[str, str] = {}


def _job_env(token: str, train: bool) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("RAY_AUTH_MODE", "RAY_ADDRESS"):  # tests/conftest.py disables auth for the session
        env.pop(key, None)
    # A throwaway token (the job must not read or write ~/.ray/auth_token); being unique, it
    # also marks the session's processes.
    env.update({"RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT),
                "PROBE_TRAIN": "1" if train else "0"})
    return env


def _run_and_sample(mode: str, train: bool, timeout: float = 75.0) -> tuple[list[sockets.Listener], dict]:
    """Run the job; list the session's listeners until its workers are up, then let it finish."""
    sync = Path(tempfile.mkdtemp(prefix="rl-", dir="/tmp"))  # short: Ray's socket paths live under it
    token = uuid.uuid4().hex
    marker, temp_dirs = f"RAY_AUTH_TOKEN={token}", [str(sync / "ray")]
    log = (sync / "job.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.ray_loopback_job", mode, str(sync)],
                            cwd=ROOT, env=_job_env(token, train), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    found: set[sockets.Listener] = set()
    try:
        deadline = time.time() + timeout
        want = ["ready-0", "ready-1"] if train else ["started"]
        while time.time() < deadline and proc.poll() is None:
            # Cheap look while starting up (the agents are the raylet's children here) ...
            found |= set(sockets.listeners(sockets.marked(marker) | sockets.tree(proc.pid)))
            if all((sync / name).exists() for name in want):
                # ... and the full session once everything runs.
                time.sleep(1.0)  # let late starters (agents' metrics ports) come up, then look again
                found |= set(sockets.listeners(sockets.ray_session(marker, temp_dirs, [proc.pid])))
                break
            time.sleep(0.5)
        (sync / "sampled").write_text("1")
        proc.wait(timeout=max(5.0, deadline - time.time()))
        result_file = sync / "result.json"
        assert result_file.exists(), (sync / "job.log").read_text()[-4000:]
        return sorted(found, key=lambda x: (x.name, x.port)), json.loads(result_file.read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_session(marker, [sync / "ray"])
        log.close()
        shutil.rmtree(sync, ignore_errors=True)


@pytest.mark.slow
def test_biggan_train_listens_on_loopback_only(digits_shards, tmp_path):
    """`biggan train` with 2 workers starts Prefect's temporary server and a local Ray by itself:
    while it trains, every socket of every process it started listens on loopback."""
    import urllib.error
    import urllib.request

    from biggan.runs import RunStore

    sync = Path(tempfile.mkdtemp(prefix="rl-", dir="/tmp"))  # short: Ray's socket paths live under it
    token = uuid.uuid4().hex
    marker = f"RAY_AUTH_TOKEN={token}"
    env = _job_env(token, train=True)
    env.pop("PREFECT_API_URL", None)
    env["RAY_TMPDIR"] = str(sync / "ray")
    run = tmp_path / "runs" / "loopback"
    log_path = sync / "train.log"
    args = [sys.executable, "-m", "biggan.cli", "train", "--workers", "2", "--shards",
            str(Path(digits_shards["train"]).parent), "--store", str(tmp_path / "runs"), "--name", "loopback",
            "--set", "train.iterations=30", "--set", "train.log_every=1", "--set", "train.checkpoint_every=30",
            "--set", "train.batch_size=8", "--set", "model.ch=8", "--set", "data.shuffle_buffer=50",
            "--set", "train.standing_stats_batches=1"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    found: set[sockets.Listener] = set()
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not RunStore(str(run)).stats.read():
            time.sleep(0.5)
        assert proc.poll() is None, log_path.read_text()[-4000:]
        time.sleep(1.0)  # workers are training: the process group and its store are up
        found = set(sockets.listeners(sockets.ray_session(marker, [str(sync / "ray")], [proc.pid])))
        url = next(line.split("Ray dashboard: ")[1].strip() for line in log_path.read_text().splitlines()
                   if "Ray dashboard: " in line)
        with pytest.raises(urllib.error.HTTPError) as denied:  # token authentication is on
            urllib.request.urlopen(f"{url}/api/version", timeout=10)
        assert proc.wait(timeout=300) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_session(marker, [sync / "ray"])
        shutil.rmtree(sync, ignore_errors=True)
    assert denied.value.code == 401
    names = {item.name for item in found}
    for component in ("gcs_server", "raylet", "ray::DashboardAgent", "ray::RayTrainWorker"):
        assert any(n.startswith(component) for n in names), f"{component} not seen listening ({names})"
    assert len({item.pid for item in found}) > 5 and any(item.port == 8265 for item in found), found
    elsewhere = [item for item in sockets.not_on_loopback(found) if item.name not in ALLOWED_ELSEWHERE]
    assert elsewhere == [], "\n".join(map(str, elsewhere))


@pytest.mark.slow
def test_plain_ray_init_listens_beyond_loopback():
    """The check above can fail: plain ray.init() on this Ray has GCS, raylet and workers on `::`."""
    found, result = _run_and_sample("plain", train=False)

    assert result["node_ip"] != "127.0.0.1"
    wide = {item.name for item in sockets.not_on_loopback(found)}
    assert {"gcs_server", "raylet"} <= wide, found
