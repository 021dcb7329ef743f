"""Two Ray nodes on this machine (two raylets, loopback only, token auth on): one Train worker
per node, a gloo all-reduce across them, and a SIGKILLed worker on the second node that Ray
Train replaces from the last checkpoint (FailureConfig(max_failures=1))."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import sockets
from tests.support.ray_nodes import two_node_cluster

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(paths: list[Path], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"driver exited early ({proc.returncode})"
        assert time.time() < deadline, f"timed out waiting for {[p.name for p in paths]}"
        time.sleep(0.3)


def _records(sync: Path, attempt: str) -> list[dict]:
    return [json.loads((sync / f"{attempt}-rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_two_nodes_train_across_and_survive_a_killed_worker(tmp_path):
    sync = tmp_path / "sync"
    sync.mkdir()
    with two_node_cluster(tmp_path / "cluster", cpus_per_node=2) as cluster:
        assert cluster.head_node_id != cluster.worker_node_id
        assert cluster.head_temp_dir != cluster.worker_temp_dir
        env = cluster.driver_env()
        env["PYTHONPATH"] = str(ROOT)  # workers on both nodes import biggan and tests.support
        log = (tmp_path / "driver.log").open("w")
        driver = subprocess.Popen([sys.executable, "-m", "tests.support.ray_two_node_job", str(sync),
                                   cluster.worker_node_id], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # First attempt: one worker per node, then both wait at step 2.
            _wait_for([sync / "running-0", sync / "running-1"], driver, timeout=90)
            temp_dirs = [str(cluster.head_temp_dir), str(cluster.worker_temp_dir)]
            found = sockets.listeners(sockets.ray_session(cluster.marker, temp_dirs, [driver.pid]))
            (sync / "sampled").write_text("1")  # the driver now kills the worker on node 2
            driver.wait(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
            log.close()
        output = (tmp_path / "driver.log").read_text()[-4000:]
        assert driver.returncode == 0, output

    first, restarted = _records(sync, "first"), _records(sync, "restarted")
    result = json.loads((sync / "result.json").read_text())
    killed = json.loads((sync / "killed.json").read_text())

    # Two nodes, one worker each, and a working all-reduce between them (1 + 2).
    both = {cluster.head_node_id, cluster.worker_node_id}
    assert {r["node_id"] for r in first} == both, first
    assert [r["sum"] for r in first] == [3.0, 3.0]
    # Everything the cluster and its workers listened on was loopback (rendezvous store included).
    names = {item.name for item in found}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::RayTrainWorker") for n in names), names
    assert sockets.not_on_loopback(found) == [], sockets.not_on_loopback(found)
    # The helper killed the first attempt's worker on the second node ...
    on_worker_node = [r for r in first if r["node_id"] == cluster.worker_node_id]
    assert killed == {"pid": on_worker_node[0]["pid"]}, killed
    # ... and Ray Train started a new group, again across both nodes, from a checkpoint.
    assert {r["node_id"] for r in restarted} == both, restarted
    assert not {r["pid"] for r in restarted} & {r["pid"] for r in first}
    assert all(r["start"] >= 1 for r in restarted), restarted
    assert [r["sum"] for r in restarted] == [3.0, 3.0]
    assert result == {"error": None, "last_checkpoint_step": 4}, result
