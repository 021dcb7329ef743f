"""The evaluation nodes on a real two-node Ray cluster (two `ray start` nodes on loopback, one CPU
and one logical GPU each), placed by Ray, with nothing but RAY_ADDRESS pointing at it:

- the three flows loaded from prefect.yaml's file-path entrypoints, as a process worker loads
  them, with `eval.device=auto`: the two checkpoints' scoring tasks, the truncation sweep and the
  memorization check each ran as a Ray task asking for 1 CPU and 1 GPU, the two scoring tasks
  side by side on the two nodes (one CPU each: Ray had to spread them);
- `python -m biggan memorization ... --set device=cpu`: its task asked for 1 CPU and no GPU.

Ray's own state API says where each task ran and what it asked for. The GPUs are logical (this
machine has none): inside the task `auto` resolves to the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ray_nodes import two_node_cluster
from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

ROOT = Path(__file__).resolve().parents[2]
EVAL = {"num_samples": 20, "batch_size": 20, "standing_passes": 1, "standing_batch": 8, "d_accuracy_samples": 20,
        "thresholds": [1.0]}


@pytest.mark.slow
def test_evaluation_nodes_run_as_ray_tasks_on_the_cluster(prefect_harness, digits_shards, tmp_path):
    from prefect.settings import PREFECT_API_URL

    cfg = tiny_config(tmp_path / "runs", digits_shards)
    for iteration, seed in ((100, 1), (200, 2)):
        save_tiny_checkpoint(cfg, iteration, seed=seed)
    out = tmp_path / "ray.json"
    with two_node_cluster(tmp_path / "cluster", cpus_per_node=1, gpus_per_node=1) as cluster:
        env = cluster.driver_env()  # RAY_ADDRESS and the cluster's token; no ray_address anywhere
        env.update(PYTHONPATH=str(ROOT), PREFECT_API_URL=str(PREFECT_API_URL.value()), BIGGAN_NO_REAPER="1")
        cli = subprocess.run([sys.executable, "-m", "biggan", "memorization", "--run", cfg.run_uri,
                              *[f"--set={k}={json.dumps(v)}" for k, v in EVAL.items()], "--set", "device=cpu"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert cli.returncode == 0, cli.stderr[-5000:]
        flows = subprocess.run([sys.executable, "-m", "tests.support.eval_on_ray", cfg.run_uri,
                                json.dumps({**EVAL, "device": "auto"}), str(out)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert flows.returncode == 0, flows.stderr[-5000:]
        nodes = {cluster.head_node_id, cluster.worker_node_id}
    seen = json.loads(out.read_text())

    # The flows came from their file (a module named `evaluate` or `__prefect_loader_<hash>__`, which
    # no Ray worker can import; not biggan_flows.evaluate) and finished.
    assert not any(f["module"].startswith("biggan_flows") for f in seen["flows"].values()), seen["flows"]
    assert seen["flows"]["evaluate_biggan"]["result"]["evaluated"] == ["checkpoint_00000100", "checkpoint_00000200"]
    assert [row["threshold"] for row in seen["flows"]["truncation_curve_flow"]["result"]["rows"]] == [None, 1.0]
    assert seen["flows"]["memorization_flow"]["result"]["d_accuracy"]["train_real"]["count"] == 20

    tasks = [t for t in seen["tasks"] if t["state"] == "FINISHED"]
    flow_tasks = [t for t in tasks if t["job_id"] == seen["driver_job"]]
    by_name = {name: [t for t in flow_tasks if t["name"] == name]
               for name in ("score_checkpoint_task", "truncation_curve_task", "memorization_task")}
    assert [len(v) for v in by_name.values()] == [2, 1, 1], seen["tasks"]
    for task in (t for found in by_name.values() for t in found):
        assert task["required_resources"] == {"CPU": 1.0, "GPU": 1.0}, task
        assert task["node_id"] in nodes, task
    # Two scoring tasks of one CPU each, submitted together, on nodes of one CPU: one per node.
    assert {t["node_id"] for t in by_name["score_checkpoint_task"]} == nodes

    from_cli = [t for t in tasks if t["job_id"] != seen["driver_job"] and t["name"] == "memorization_task"]
    assert len(from_cli) == 1 and from_cli[0]["required_resources"] == {"CPU": 1.0}, seen["tasks"]
    assert from_cli[0]["node_id"] in nodes
