"""The training step of two presets side by side on this machine: BigGAN against BigGAN-deep.

    python benchmarks/arch_step.py                                   # digits32 vs digits32-deep, 1 thread
    python benchmarks/arch_step.py --presets imagenet128 imagenet128-deep --set model.ch=16 --set train.batch_size=8

Each preset's step (2 D steps + 1 G step, hinge loss, Adam, ortho reg, EMA, images from memory, as
`benchmarks/train_step.py` builds it) lives in its own process (`step_worker.py`, the driver of
`train_step_compare.py`); both warm up, then the driver alternates them one iteration at a time
(A-B-B-A-...), so load from anything else on the machine falls on both alike. Prints the median
wall and CPU milliseconds per iteration, the parameter counts, the arithmetic each ran (the preset's
`train.precision`, `auto` resolved as training resolves it, unless --precision forces one) and
the peak RSS of each process.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

from train_step_compare import REPO, Worker  # benchmarks/, on sys.path when a script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs=2, default=["digits32", "digits32-deep"], metavar="PRESET")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for both presets, e.g. train.batch_size=8 (repeatable)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations of EACH preset")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="preset", choices=["preset", "fp32", "bf16"])
    parser.add_argument("--tree", type=Path, default=REPO, help="the biggan checkout to time (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows (with every timing) here")
    args = parser.parse_args()

    from biggan.config import parse_override

    overrides = dict(parse_override(text) for text in args.overrides)
    if args.precision != "preset":
        overrides["train.precision"] = args.precision
    workers = [Worker(args.tree, preset, overrides, args.threads) for preset in args.presets]
    try:
        for worker in workers:
            worker.warmup(args.warmup)
        for i in range(args.iterations):
            for worker in (workers if i % 2 == 0 else workers[::-1]):  # A-B-B-A-...
                worker.step()
    finally:
        rss = [worker.close() for worker in workers]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    print(f"CPU {cpu}, {args.threads} thread(s), overrides {overrides or 'none'}, medians of {args.iterations} "
          f"alternated iterations per preset after {args.warmup} warm-up (tree {args.tree})\n")
    print("| preset | G params | D params | arithmetic | ms per iteration (min-max) | CPU ms | x first | RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base = statistics.median(workers[0].wall)
    rows = []
    for preset, worker, peak in zip(args.presets, workers, rss):
        wall = statistics.median(worker.wall)
        rows.append({"preset": preset, "params": worker.params, "precision": worker.precision, "ms": wall,
                     "cpu_ms": statistics.median(worker.cpu), "rss_mib": peak, "wall": worker.wall})
        print(f"| {preset} | {int(worker.params[0]):,} | {int(worker.params[1]):,} | {worker.precision} | "
              f"{wall:.1f} ({min(worker.wall):.1f}-{max(worker.wall):.1f}) | {rows[-1]['cpu_ms']:.1f} | "
              f"{wall / base:.2f} | {peak:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
