"""The full training step of an old commit against this checkout's, side by side on this machine.

    python benchmarks/train_step_compare.py --old e7a81d3                  # configs a, b, c; 1 and 2 threads
    python benchmarks/train_step_compare.py --old e7a81d3 --configs a --threads 1 --iterations 9

The old commit is checked out as a git worktree under /tmp (kept for the next run; --remove-worktree
drops it). For every configuration and thread count, the old and the new step each live in their
own process (`step_worker.py`, so peak RSS is per process: `ru_maxrss`); both warm up, then the
driver alternates them, one iteration at a time in the order old-new-new-old-..., so load from
anything else on the machine falls on both alike. It prints the median wall and CPU milliseconds
per iteration (2 D steps + 1 G step, hinge loss, Adam, ortho reg, EMA, images from memory, as
`benchmarks/train_step.py` of each commit builds it for the CPU), the ratio old / new, and the
peak RSS of each process. Identical work: the same architecture and parameter counts (checked).

Configurations (the issue's): a) digits32 (32 px, ch 8, batch 16); b) 32 px, ch 32, batch 64;
c) imagenet128 at ch 16, batch 8 (128 px, 1,000 classes, attention at 64).

The old side runs in fp32 (e7a81d3's CPU `auto` is fp32). The new side runs its preset's
`train.precision=auto`, resolved as training resolves it: bf16 autocast only on a CPU where a
measured bf16 convolution beats fp32 (`--new-precision fp32|bf16` forces one); the last
column says which arithmetic the new side ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("step_worker.py")
CONFIGS = {
    "a": ("digits32", {}),
    "b": ("digits32", {"model.ch": 32, "train.batch_size": 64}),
    "c": ("imagenet128", {"model.ch": 16, "train.batch_size": 8}),
}


def old_worktree(commit: str) -> Path:
    """A detached worktree of `commit` under /tmp (reused if it is already there)."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    path = Path("/tmp") / f"biggan-old-{full[:10]}"
    if not (path / "biggan").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), full],
                       check=True, capture_output=True)
    return path


class Worker:
    def __init__(self, tree: Path, preset: str, overrides: dict, threads: int,
                 script: Path = WORKER, env: dict | None = None) -> None:
        env = {**os.environ, **(env or {}), "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--tree", str(tree), "--preset", preset,
             "--overrides", json.dumps(overrides), "--threads", str(threads)],
            cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._expect("ready").split()
        self.params, self.precision = ready[1:3], ready[3]  # G and D parameter counts; arithmetic
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def _ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._expect(None)

    def _expect(self, word: str | None) -> str:
        line = self.proc.stdout.readline()
        if not line or (word is not None and not line.startswith(word)):
            raise RuntimeError(f"worker said {line!r} (exit code {self.proc.poll()})")
        return line.strip()

    def warmup(self, n: int) -> None:
        self._ask(f"warmup {n}")

    def step(self) -> None:
        wall, cpu = map(float, self._ask("step").split())
        self.wall.append(wall)
        self.cpu.append(cpu)

    def close(self) -> float:
        rss = float(self._ask("rss"))
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)
        return rss


def compare(old_tree: Path, config: str, threads: int, warmup: int, iterations: int, new_precision: str) -> dict:
    preset, overrides = CONFIGS[config]
    new_overrides = overrides if new_precision == "preset" else {**overrides, "train.precision": new_precision}
    old, new = Worker(old_tree, preset, overrides, threads), Worker(REPO, preset, new_overrides, threads)
    if old.params != new.params:
        raise RuntimeError(f"not the same work: G, D parameters {old.params} (old) vs {new.params} (new)")
    try:
        old.warmup(warmup)
        new.warmup(warmup)
        for i in range(iterations):
            pair = (old, new) if i % 2 == 0 else (new, old)  # old-new-new-old-...
            for worker in pair:
                worker.step()
    finally:
        rss_old, rss_new = old.close(), new.close()
    row = {"config": config, "threads": threads, "iterations": iterations, "params": new.params,
           "new_precision": new.precision,
           "old_ms": statistics.median(old.wall), "new_ms": statistics.median(new.wall),
           "old_cpu_ms": statistics.median(old.cpu), "new_cpu_ms": statistics.median(new.cpu),
           "old_rss_mib": rss_old, "new_rss_mib": rss_new, "old_wall": old.wall, "new_wall": new.wall}
    row["ratio"] = row["old_ms"] / row["new_ms"]
    row["cpu_ratio"] = row["old_cpu_ms"] / row["new_cpu_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="the commit to compare against (e.g. e7a81d3)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations of EACH side (>= 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--new-precision", default="preset", choices=["preset", "fp32", "bf16"],
                        help="the new side's train.precision (preset: the preset's own, `auto` resolved as the "
                             "training loop resolves it on this CPU); the old side always runs its preset's")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows (with every timing) here")
    parser.add_argument("--remove-worktree", action="store_true")
    args = parser.parse_args()

    tree = old_worktree(args.old)
    print(f"old: {args.old} at {tree}; new: {REPO} (working tree)", flush=True)
    header = (f"{'cfg':3} {'thr':>3} {'old ms':>9} {'new ms':>9} {'ratio':>6} {'old cpu':>9} {'new cpu':>9} "
              f"{'ratio':>6} {'old RSS MiB':>11} {'new RSS MiB':>11} {'new arith':>9}")
    print(header, flush=True)
    rows = []
    for config in args.configs:
        for threads in args.threads:
            r = compare(tree, config, threads, args.warmup, args.iterations, args.new_precision)
            rows.append(r)
            print(f"{config:3} {threads:3d} {r['old_ms']:9.1f} {r['new_ms']:9.1f} {r['ratio']:6.2f} "
                  f"{r['old_cpu_ms']:9.1f} {r['new_cpu_ms']:9.1f} {r['cpu_ratio']:6.2f} "
                  f"{r['old_rss_mib']:11.0f} {r['new_rss_mib']:11.0f} {r['new_precision']:>9}", flush=True)
    print(f"medians of {args.iterations} alternated iterations per side after {args.warmup} warm-up; "
          "ratio = old / new (> 1: new is faster); CPU = process time of the worker", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.remove_worktree:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)


if __name__ == "__main__":
    main()
