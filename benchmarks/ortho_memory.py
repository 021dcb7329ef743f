"""Peak memory of one G step at 128 px, ch 96 (the paper's BigGAN), old commit against this one.

    python benchmarks/ortho_memory.py --old e7a81d3            # batch 2, 2 threads
    python benchmarks/ortho_memory.py --old e7a81d3 --no-ortho # the same without the ortho reg

Each tree runs in its own process (the old one from the git worktree `train_step_compare.py`
makes): it builds the imagenet128 step at ch 96 as its own `benchmarks/train_step.py` does,
then runs ONE G step (G forward, D forward, backward, ortho reg, Adam, EMA). Printed: resident
memory before the step and the process's peak (ru_maxrss) after it; their difference is what
the G step added on top of the built models. The eq. 3 gradient of G's first linear
(24576 x 20) built a 24576 x 24576 Gram matrix, its identity and its mask: 2.4 GB each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import inspect, json, resource, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from benchmarks.train_step import build_step
step, _ = build_step("imagenet128", int(sys.argv[2]), torch.device("cpu"),
                     {"model.ch": 96, "train.ortho": sys.argv[3] == "1"})
def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
before, peak_before = rss_now(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
takes_tick = "tick" in inspect.signature(step.g_step).parameters
step.g_step(1, False) if takes_tick else step.g_step(1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rss_before": before, "peak_before": peak_before, "peak": peak}))
"""


def measure(tree: Path, threads: int, batch: int, ortho: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(batch), "1" if ortho else "0"],
                         cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="the commit to compare against (e.g. e7a81d3)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ortho", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step_compare import REPO, old_worktree

    print(f"one G step, imagenet128 at ch 96, batch {args.batch}, ortho {'off' if args.no_ortho else 'on'}, "
          f"{args.threads} threads", flush=True)
    for name, tree in (("old", old_worktree(args.old)), ("new", REPO)):  # one after the other
        r = measure(tree, args.threads, args.batch, not args.no_ortho)
        print(f"{name}: resident before the step {r['rss_before']:7.0f} MiB, peak after it {r['peak']:7.0f} MiB "
              f"(+{r['peak'] - r['rss_before']:.0f} MiB in the G step)", flush=True)


if __name__ == "__main__":
    main()
