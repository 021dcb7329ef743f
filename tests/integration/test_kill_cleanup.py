"""`kill -9` of `biggan train` leaves nothing behind: 30 s later no process it started is alive,
neither its local Ray (GCS, raylet, agents, workers) nor Prefect's temporary API server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from biggan.runs import RunStore
from tests.support import sockets
from tests.support.ray_nodes import stop_session

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_kill_9_of_biggan_train_leaves_no_process_behind(digits_shards, tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk-", dir="/tmp"))  # short: Ray's socket paths live under it
    marker = f"RAY_AUTH_TOKEN={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "PREFECT_API_URL",
                                                             "BIGGAN_NO_REAPER")}
    env.update(dict([marker.split("=", 1)]), RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(ROOT),
               BIGGAN_LOG_DIR=str(tmp_path / "logs"))
    run = tmp_path / "runs" / "killed"
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", "from biggan.cli.entry import run; run()", "train",
                             "--workers", "2", "--shards", str(Path(digits_shards["train"]).parent),
                             "--store", str(tmp_path / "runs"), "--name", "killed", "--set", "train.iterations=2000",
                             "--set", "train.log_every=1", "--set", "train.batch_size=8", "--set", "model.ch=8"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not RunStore(str(run)).stats.read():
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "train.log").read_text()[-3000:]
            time.sleep(0.5)
        started = sockets.ray_session(marker, [str(ray_tmp)], [proc.pid]) - {proc.pid}
        names = {sockets.psutil.Process(pid).name() for pid in started if sockets.psutil.pid_exists(pid)}
        assert len(started) >= 5, names  # Prefect's server, GCS, raylet, agents, workers: the check sees them
        os.kill(proc.pid, signal.SIGKILL)  # the command alone, as a user's `kill -9 <pid>`
        proc.wait(timeout=10)
        time.sleep(30)
        left = [pid for pid in started if sockets.psutil.pid_exists(pid)
                and sockets.psutil.Process(pid).status() != sockets.psutil.STATUS_ZOMBIE]
        assert left == [], [sockets.psutil.Process(pid).cmdline()[:3] for pid in left]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        stop_session(marker, [ray_tmp])
