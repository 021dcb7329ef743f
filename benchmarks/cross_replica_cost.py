"""What cross-replica BatchNorm costs per training step on this machine's gloo.

    python benchmarks/cross_replica_cost.py                    # the demo's shape: 2 workers x batch 8

Two processes (gloo over 127.0.0.1, one torch thread each, as the demo's Ray workers run) train
the `digits32` step on in-memory images, first with local BN (gradients still averaged), then
with G's BN statistics and their backward sums all-reduced, as training does with more than one
worker. Prints median wall and CPU ms per iteration of rank 0, and the latency of one gloo
all-reduce of a BN layer's packed statistics.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world: int, port: int, batch: int, iterations: int, cross_replica: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from train_step import build_step  # benchmarks/, on sys.path when a script runs

    from biggan.models.batchnorm import CrossReplicaReducer, set_bn_reducer

    step, _ = build_step("digits32", batch, torch.device("cpu"), {})
    if cross_replica:
        set_bn_reducer(step.G, CrossReplicaReducer())
    for i in range(5):
        step.step(i + 1, tick=False)
    packed = torch.zeros(65)  # a 32-channel BN layer's [sum, sum of squares, count]
    dist.barrier()
    start = time.perf_counter()
    for _ in range(200):
        dist.all_reduce(packed)
    latency_us = (time.perf_counter() - start) / 200 * 1e6
    wall, cpu = [], []
    for i in range(iterations):
        w, c = time.perf_counter(), time.process_time()
        step.step(10 + i, tick=False)
        wall.append((time.perf_counter() - w) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    if rank == 0:
        kind = "cross-replica BN" if cross_replica else "local BN       "
        print(f"{kind}  wall {statistics.median(wall):7.1f} ms  cpu {statistics.median(cpu):7.1f} ms  "
              f"(all-reduce of 65 floats: {latency_us:.0f} us)", flush=True)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="per-worker batch (the demo: 16 over 2 workers)")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--port", type=int, default=29561)
    args = parser.parse_args()
    print(f"{args.workers} processes, gloo, 1 thread each, digits32 at batch {args.batch} per worker; "
          f"median of {args.iterations} iterations")
    for cross_replica in (False, True):
        mp.spawn(worker, args=(args.workers, args.port + cross_replica, args.batch, args.iterations, cross_replica),
                 nprocs=args.workers)


if __name__ == "__main__":
    main()
