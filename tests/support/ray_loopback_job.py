"""A small Ray job for socket checks, run as `python -m tests.support.ray_loopback_job MODE SYNC_DIR`.

MODE "loopback": Ray from biggan.train.launcher.local_ray.start_local_ray and a 2-worker gloo
TorchTrainer with LoopbackTorchConfig. MODE "loopback-torch-store": the same Ray with Ray's
own TorchConfig. MODE "plain": `ray.init()` and Ray's own TorchConfig. The last two show what
the check catches. It runs in its own process so the test session's Ray (if
any) does not interfere. Protocol with the test, through files in SYNC_DIR:
  started        session dir of this Ray, once ray.init returned
  ready-<rank>   each training worker, once its process group works
  sampled        written by the test once it has listed sockets; the workers then finish
  sum-<rank>      each worker's all-reduce result
  result.json    what the job saw (node IP, auth mode, all-reduce sums, dashboard answer)
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

WAIT_S = 45  # how long a worker waits for the test's "sampled" file


def _train_loop(config: dict) -> None:
    import ray.train
    import torch
    import torch.distributed as dist

    sync = Path(config["sync"])
    rank = dist.get_rank()
    x = torch.full((4,), float(rank + 1))
    dist.all_reduce(x)  # gloo over the process group Ray Train set up
    # Ray's own backend exports MASTER_ADDR/PORT; LoopbackTorchConfig passes a tcp:// URL instead.
    rendezvous = {"master_addr": os.environ.get("MASTER_ADDR"), "master_port": os.environ.get("MASTER_PORT")}
    (sync / f"ready-{rank}").write_text(json.dumps(rendezvous))
    deadline = time.time() + WAIT_S
    while not (sync / "sampled").exists() and time.time() < deadline:
        time.sleep(0.2)
    for _ in range(3):
        dist.all_reduce(x)
    (sync / f"sum-{rank}").write_text(str(float(x[0])))  # Train V2's Result.metrics is None without a checkpoint
    ray.train.report({"sum": float(x[0])})


def _dashboard_status(url: str | None) -> int | None:
    """HTTP status of an unauthenticated dashboard request (401 when token auth is on)."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def main(mode: str, sync: Path) -> None:
    import ray
    from ray._raylet import AuthenticationMode, get_authentication_mode
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if mode in ("loopback", "loopback-torch-store"):
        from biggan.train.launcher import local_ray as ray_local

        url = ray_local.start_local_ray(num_cpus=4, object_store_memory=80 * 2**20, temp_dir=str(sync / "ray"))
        torch_config = (ray_local.LoopbackTorchConfig(backend="gloo") if mode == "loopback"
                        else TorchConfig(backend="gloo"))  # Ray's own rendezvous: TCPStore on `::`
    else:
        ray.init(num_cpus=4, object_store_memory=80 * 2**20, _temp_dir=str(sync / "ray"))
        url = "http://" + ray._private.worker.get_dashboard_url()
        torch_config = TorchConfig(backend="gloo")
    (sync / "started").write_text(ray._private.worker._global_node.get_session_dir_path())
    result = {"node_ip": ray.util.get_node_ip_address(),
              "token_auth": get_authentication_mode() == AuthenticationMode.TOKEN,
              "dashboard_unauthenticated_status": _dashboard_status(url)}
    if os.environ.get("PROBE_TRAIN", "1") == "1":
        trainer = TorchTrainer(_train_loop, train_loop_config={"sync": str(sync)}, torch_config=torch_config,
                               scaling_config=ScalingConfig(num_workers=2),
                               run_config=RunConfig(name="loopback", storage_path=str(sync / "runs")))
        fit = trainer.fit()
        result["sums"] = [float((sync / f"sum-{rank}").read_text()) for rank in range(2)]
        result["error"] = None if fit.error is None else repr(fit.error)
    else:
        deadline = time.time() + WAIT_S
        while not (sync / "sampled").exists() and time.time() < deadline:
            time.sleep(0.2)
    if (sync / "ready-0").exists():
        result["rendezvous"] = json.loads((sync / "ready-0").read_text())
    (sync / "result.json").write_text(json.dumps(result))
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
