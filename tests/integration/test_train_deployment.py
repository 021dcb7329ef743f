"""The cluster path, for real: `prefect server start` on loopback, a process work pool, `prefect
deploy` of prefect.yaml's `train-biggan/demo`, a worker, and `prefect deployment run ... --watch`.
The flow run (in the worker's subprocess) starts its own local Ray and trains 2 gloo workers
for a few iterations on the session's digits shards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POOL = "biggan-process"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group: the server/worker and its children
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _prefect(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_deployment_run_train_biggan_demo(digits_shards, tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "BIGGAN_HOME": str(REPO),  # prefect.yaml's pull step: where the worker runs flows from
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(REPO),
    })
    env.pop("RAY_ADDRESS", None)
    server_log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], cwd=tmp_path, env=env, stdout=server_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        _wait_healthy(api, server)
        _prefect(env, "work-pool", "create", POOL, "--type", "process")
        # prefect matches `flow/deployment` against the entrypoint's FUNCTION name (dashes for _).
        deployed = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name",
                                   "train-biggan-flow/demo"], cwd=REPO, env=env, text=True, capture_output=True,
                                  timeout=300)
        # prefect 3.8.8's CLI creates the deployment, then its "any worker online?" hint query is
        # rejected by the server with fastapi 0.152 (422: limit/offset null) and exits 1. Only that
        # failure is tolerated: the deployment must exist.
        if deployed.returncode != 0:
            assert "workers/filter" in deployed.stdout + deployed.stderr, deployed.stdout + deployed.stderr
        _prefect(env, "deployment", "inspect", "train-biggan/demo")
        worker_log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                                  cwd=tmp_path, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        run_root = tmp_path / "runs"
        params = {
            "preset": "digits32",
            "shards": str(digits_shards["train"]),
            "num_workers": 2,
            "overrides": {"run_root": str(run_root), "name": "deployed", "train.iterations": 2,
                          "train.batch_size": 8, "train.log_every": 1, "train.checkpoint_every": 2,
                          "model.ch": 8, "train.standing_stats_batches": 1, "data.shuffle_buffer": 50},
        }
        done = _prefect(env, "deployment", "run", "train-biggan/demo", "--params", json.dumps(params),
                        "--watch", "--watch-timeout", "420", timeout=480)
        assert "Completed" in done.stdout + done.stderr, done.stdout + done.stderr
        run_dir = run_root / "deployed"
        assert (run_dir / "checkpoint_00000002" / "state.pt").is_file()
        assert json.loads((run_dir / "evaluate.json").read_text())["checkpoint"] == "checkpoint_00000002"
        assert len((run_dir / "stats.jsonl").read_text().splitlines()) == 2
        log = (tmp_path / "worker.log").read_text()
        assert "Ray dashboard: http://127.0.0.1" in log
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)
