"""A real Prefect server for tests: `prefect server start` on a free loopback port (it serves the
UI too, which the session's test harness does not), the `prefect` CLI against it, a worker, and
the few API reads the tests make."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with everything in its process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class PrefectServer:
    url: str  # http://127.0.0.1:<port>: the UI
    env: dict[str, str]  # environment of the CLI, the server and the worker
    cwd: Path  # where `prefect deploy` reads prefect.yaml
    logs: Path  # server.log and worker.log
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def start(self, timeout: float = 180) -> None:
        self.procs.append(self._spawn("server.log", "server", "start", "--host", "127.0.0.1",
                                      "--port", self.url.rsplit(":", 1)[1]))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.procs[0].returncode}:\n{self.log('server')}")
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"prefect server at {self.url} not healthy after {timeout}s")

    def start_worker(self, pool: str) -> None:
        self.procs.append(self._spawn("worker.log", "worker", "start", "--pool", pool))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

    def _spawn(self, log: str, *args: str) -> subprocess.Popen:
        handle = (self.logs / log).open("w")
        return subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=self.logs, env=self.env,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=self.cwd, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.api}{path}", timeout=30) as response:
            return json.loads(response.read())

    def flow_runs(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Flow runs, newest first; only those of `deployment` (flow/name) when given."""
        body: dict[str, Any] = {"sort": "EXPECTED_START_TIME_DESC", "limit": 200}
        if deployment is not None:
            flow, name = deployment.split("/")
            found = self.get(f"/deployments/name/{flow}/{name}")
            body["deployments"] = {"id": {"any_": [found["id"]]}}
        return self.post("/flow_runs/filter", body)

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})

    def latest_artifact(self, key: str) -> dict[str, Any] | None:
        found = self.post("/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}, "limit": 1})
        return found[0] if found else None

    def wait_for(self, predicate, timeout: float, what: str, every: float = 3):
        """Poll `predicate()` until it returns something truthy; return that."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"{what} not seen in {timeout:.0f}s\n--- worker log ---\n{self.log('worker')[-6000:]}")
