"""One side of `train_step_compare.py`: builds a training step from the biggan tree on
PYTHONPATH and runs it on command, so the old and the new commit each run in their own process
(their own peak RSS) while the driver alternates between them.

Protocol, one line each way: on start `ready <G params> <D params> <train.precision as built>`;
`warmup N` -> `ok <iterations done>`; `step` -> `<wall ms> <cpu ms>`; `rss` -> `<peak RSS in MiB>`; `quit`.
Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="the biggan checkout under test")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--overrides", default="{}", help="JSON dict of dotted config keys")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import biggan
    from benchmarks.train_step import build_step  # the tree's own way of building a CPU step

    if Path(biggan.__file__).resolve().parents[1] != args.tree.resolve():
        raise SystemExit(f"imported biggan from {biggan.__file__}, not from {args.tree}: set PYTHONPATH")
    overrides = json.loads(args.overrides)
    batch = overrides.pop("train.batch_size", None)
    step, _ = build_step(args.preset, batch, torch.device("cpu"), overrides)
    # The loop passes tick=True only on logging/checkpoint iterations (the new step's API).
    takes_tick = "tick" in inspect.signature(step.step).parameters
    log_every = step.cfg.log_every
    iteration = 0

    def run_one() -> None:
        nonlocal iteration
        iteration += 1
        if takes_tick:
            step.step(iteration, tick=iteration % log_every == 0)
        else:
            step.step(iteration)

    counts = [sum(p.numel() for p in net.parameters()) for net in (step.G, step.D)]
    print(f"ready {counts[0]} {counts[1]} {step.cfg.precision}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "warmup":
            for _ in range(int(command[1])):
                run_one()
            print(f"ok {iteration}", flush=True)
        elif command[0] == "step":
            wall, cpu = time.perf_counter(), time.process_time()
            run_one()
            print(f"{(time.perf_counter() - wall) * 1e3:.3f} {(time.process_time() - cpu) * 1e3:.3f}", flush=True)
        elif command[0] == "rss":
            print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)
        elif command[0] == "quit":
            break


if __name__ == "__main__":
    main()
