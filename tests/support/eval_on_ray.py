"""Run the evaluation flows the way a Prefect process worker runs prefect.yaml's deployments, then
report what Ray itself recorded about their tasks:

    python -m tests.support.eval_on_ray RUN EVAL_OVERRIDES_JSON OUT_JSON

Each flow is loaded from its file-path entrypoint (`flows/evaluate.py:<function>`) by Prefect's
own loader, in this fresh process whose only way to a Ray cluster is RAY_ADDRESS, and called
without a `ray_address` parameter. Afterwards every task of the cluster is listed from Ray's state
API (name, node, the resources it asked for, its state) into OUT_JSON, with the flows' results.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

FLOWS = ("evaluate_biggan", "truncation_curve_flow", "memorization_flow")


def ray_tasks(timeout_s: float = 30.0) -> list[dict]:
    """Every task of the cluster, as Ray's state API reports it, once none is pending or running
    there (workers report task events every second or so: a finished task can still read RUNNING)."""
    from ray.util.state import list_tasks

    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [{"name": t.name, "node_id": t.node_id, "required_resources": t.required_resources,
                  "state": t.state, "job_id": t.job_id}
                 for t in list_tasks(detail=True, limit=10_000, raise_on_missing_output=False)]
        if all(t["state"] in ("FINISHED", "FAILED") for t in tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(0.5)


def main(run: str, overrides: dict, out: Path) -> None:
    import ray
    from prefect.flows import load_flow_from_entrypoint

    results = {}
    for name in FLOWS:
        flow = load_flow_from_entrypoint(f"flows/evaluate.py:{name}")
        results[name] = {"module": flow.fn.__module__, "result": flow(run=run, eval_overrides=overrides)}
    out.write_text(json.dumps({"flows": results, "tasks": ray_tasks(),
                               "driver_job": ray.get_runtime_context().get_job_id()}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]))
