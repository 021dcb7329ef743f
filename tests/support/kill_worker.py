"""`python -m tests.support.kill_worker NODE_ID RUN_URI CHECKPOINT OUT`: connect to the cluster
(RAY_ADDRESS and token from the environment), wait until the run store holds CHECKPOINT, then
SIGKILL the Ray Train worker on NODE_ID at once; write {"pid": ...} (or {"error": ...}) to OUT."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(node_id: str, run: str, checkpoint: str, out: Path, timeout: float = 300.0) -> None:
    import ray

    from biggan.runs import RunStore
    from biggan.train.launcher.local_ray import loopback_node_ip
    from tests.support.ray_nodes import kill_train_worker_on_node

    with loopback_node_ip():
        ray.init(log_to_driver=False)
    store = RunStore(run)
    deadline = time.time() + timeout
    try:
        while checkpoint not in {info.name for info in store.checkpoints()}:
            if time.time() > deadline:
                raise TimeoutError(f"{checkpoint} never appeared in {run}")
            time.sleep(0.2)
        out.write_text(json.dumps({"pid": kill_train_worker_on_node(node_id)}))
    except Exception as err:  # noqa: BLE001 - reported to the test through the file
        out.write_text(json.dumps({"error": repr(err)}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))
