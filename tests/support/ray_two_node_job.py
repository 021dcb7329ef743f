"""Driver for the two-node test: `python -m tests.support.ray_two_node_job SYNC_DIR WORKER_NODE_ID`.

Run with ClusterInfo.driver_env() (RAY_ADDRESS, token, loopback resolution). A 2-worker gloo
TorchTrainer with STRICT_SPREAD (one worker per node) and FailureConfig(max_failures=1):
the first attempt reaches step 2 and waits; the test lists sockets and writes `sampled`; a
thread of this driver then SIGKILLs the Train worker on WORKER_NODE_ID (found with the state
API); Ray Train restarts the worker group, which resumes from rank 0's last checkpoint.
Files in SYNC_DIR: <attempt>-rank<r>.json per worker and attempt, running-<r>, killed.json,
result.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

STEPS = 5  # steps 0..4; the first attempt stops at KILL_AT
KILL_AT = 2
WAIT_S = 60


def _train_loop(config: dict) -> None:
    import torch
    import torch.distributed as dist

    import ray
    import ray.train

    sync = Path(config["sync"])
    rank = ray.train.get_context().get_world_rank()
    checkpoint = ray.train.get_checkpoint()
    start = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            start = json.loads((Path(path) / "state.json").read_text())["step"] + 1
    attempt = "first" if checkpoint is None else "restarted"
    x = torch.tensor([rank + 1.0])
    dist.all_reduce(x)  # gloo across the two nodes
    record = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
              "start": start, "sum": float(x[0]), "cwd": os.getcwd()}
    (sync / f"{attempt}-rank{rank}.json").write_text(json.dumps(record))
    for step in range(start, STEPS):
        y = torch.ones(1)
        dist.all_reduce(y)
        with tempfile.TemporaryDirectory() as tmp:
            saved = None
            if rank == 0:  # rank 0 writes, every rank reports
                (Path(tmp) / "state.json").write_text(json.dumps({"step": step}))
                saved = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({"step": step, "world": float(y[0])}, checkpoint=saved)
        if attempt == "first" and step == KILL_AT:
            (sync / f"running-{rank}").write_text(str(os.getpid()))
            time.sleep(WAIT_S)  # the worker on the second node is killed meanwhile


def _kill_when_sampled(sync: Path, node_id: str) -> None:
    from tests.support.ray_nodes import kill_train_worker_on_node

    deadline = time.time() + WAIT_S
    while not (sync / "sampled").exists() and time.time() < deadline:
        time.sleep(0.2)
    try:
        pid = kill_train_worker_on_node(node_id)
        (sync / "killed.json").write_text(json.dumps({"pid": pid}))
    except Exception as err:  # reported to the test through the file
        (sync / "killed.json").write_text(json.dumps({"error": repr(err)}))


def main(sync: Path, worker_node_id: str) -> None:
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from biggan.train.ray_local import LoopbackTorchConfig

    ray.init(log_to_driver=False)  # RAY_ADDRESS from the environment
    threading.Thread(target=_kill_when_sampled, args=(sync, worker_node_id), daemon=True).start()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"sync": str(sync)},
        torch_config=LoopbackTorchConfig(backend="gloo"),  # rendezvous store on 127.0.0.1 too
        scaling_config=ScalingConfig(num_workers=2, placement_strategy="STRICT_SPREAD",
                                     resources_per_worker={"CPU": 1}),
        # Train V2 wants storage every node can reach: on one machine an absolute local path is.
        run_config=RunConfig(name="two-nodes", storage_path=str(sync / "runs"),
                             failure_config=FailureConfig(max_failures=1)),
    )
    result = trainer.fit()
    last = None
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as path:
            last = json.loads((Path(path) / "state.json").read_text())["step"]
    (sync / "result.json").write_text(json.dumps({"error": None if result.error is None else repr(result.error),
                                                  "last_checkpoint_step": last}))
    ray.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
