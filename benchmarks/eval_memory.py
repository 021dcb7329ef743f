"""Peak memory of `biggan evaluate` and `biggan truncation-curve`, the commands a user runs,
against the number of samples.

A run at 128 px with the paper's architecture (non-local blocks at 64 x 64 in G and D, Appendix
B) at the `digits32` preset's width (ch 8), random weights (memory does not depend on what G
learned), is scored with the dataset-classifier extractor against the embedded digits sharded at
128 px. Each measurement runs the command in a fresh process and reads that process tree's peak
RSS: a small wrapper process starts the command and reports getrusage(RUSAGE_CHILDREN), the
largest resident set of any process it waited for (the `biggan` process itself: Prefect's
temporary server is a thread of it), what GNU `time -f %M` reports. The classifier and the
reference statistics are made once beforehand, so the peaks are of scoring. With `--old COMMIT`
the same commands of that commit (a git worktree, first on PYTHONPATH) run beside today's.

    python benchmarks/eval_memory.py                               # 2,000 and 8,000 samples
    python benchmarks/eval_memory.py --old 64ba5a0 --samples 2000 8000 --truncation-samples 500 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_fixtures import demo_shards, random_weights_run  # benchmarks/, on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
# digits32's width at 128 px with the paper's attention placement (g_attention/d_attention -1).
MODEL = {"resolution": 128, "num_classes": 10, "ch": 8, "dim_z": 120}
THRESHOLDS = [2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.04]


def prepare(work: Path) -> None:
    """Digits at 128 px, a run with one checkpoint of random weights, the classifier and the
    reference statistics in the work dir's cache (by running the command once on a few samples)."""
    from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig

    shards = demo_shards(work, resolution=128, samples_per_shard=500)
    cfg = ExperimentConfig(name="bench", run_root=str(work / "runs"),
                           data=DataConfig(train_shards=str(shards / "train"), val_shards=str(shards / "val")),
                           model=ModelConfig(**MODEL),
                           eval=EvalConfig(feature_extractor="dataset-classifier", batch_size=100,
                                           standing_passes=16, standing_batch=100, classifier_epochs=1,
                                           device="cpu", thresholds=THRESHOLDS))
    if not (work / "runs" / "bench" / "options.json").is_file():
        random_weights_run(cfg)


def command(work: Path, node: str, samples: int) -> list[str]:
    return ["biggan", node, "--run", "bench", "--store", str(work / "runs"), "--set", f"num_samples={samples}",
            "--set", f"cache_dir={work / 'cache'}"]


def measure(args: list[str], tree: Path) -> dict:
    """Run `args` in a fresh wrapper process with `tree` first on PYTHONPATH; its peak RSS and time."""
    env = {**os.environ, "PYTHONPATH": str(tree), "BIGGAN_NO_REAPER": "1"}
    wrapper = [sys.executable, __file__, "--wrap", *args]
    done = subprocess.run(wrapper, capture_output=True, text=True, env=env, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def wrap(args: list[str]) -> None:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        sys.exit(done.returncode)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # Linux reports KiB
    print(json.dumps({"peak_rss_mb": peak, "seconds": seconds}))


def forget_scores(work: Path) -> None:
    """evaluate scores only unscored checkpoints: drop the histories so it scores again."""
    for path in (work / "runs" / "bench").glob("metric-*.jsonl"):
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[2000, 8000], help="evaluate: samples")
    parser.add_argument("--truncation-samples", type=int, nargs="*", default=[500, 2000],
                        help="truncation-curve: samples per point (the untruncated one and 7 thresholds)")
    parser.add_argument("--old", default=None, help="also measure this commit's commands (git worktree)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--wrap", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wrap:
        wrap(args.wrap)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="biggan-eval-memory-"))
    prepare(work)
    trees = [("new", REPO)]
    if args.old:
        old_tree = work / "old-tree"
        if not old_tree.is_dir():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.old],
                           check=True, capture_output=True)
        trees.append(("old", old_tree))
    print(f"biggan evaluate / truncation-curve at 128 px, {MODEL} (attention at 64 x 64 in G and D), "
          f"dataset-classifier features, eval batch 100, CPU; work dir {work}", flush=True)
    print(f"{'command':<18} {'code':<5} {'samples':>8} {'peak RSS (MB)':>14} {'s / 1000 samples':>17}", flush=True)
    try:
        for _code, tree in trees:  # each code's classifier and reference statistics, made once
            forget_scores(work)
            measure(command(work, "evaluate", 100), tree)
        for n in args.samples:
            for code, tree in trees:
                forget_scores(work)
                r = measure(command(work, "evaluate", n), tree)
                print(f"{'evaluate':<18} {code:<5} {n:>8} {r['peak_rss_mb']:>14.0f} "
                      f"{1000 * r['seconds'] / n:>17.2f}", flush=True)
        for n in args.truncation_samples:
            for code, tree in trees:
                forget_scores(work)  # the curve reuses the evaluate node's scores: none to reuse
                r = measure(command(work, "truncation-curve", n) + ["--set", f"thresholds={THRESHOLDS}"], tree)
                points = n * (len(THRESHOLDS) + (code == "new"))  # today's curve adds the untruncated point
                print(f"{'truncation-curve':<18} {code:<5} {n:>8} {r['peak_rss_mb']:>14.0f} "
                      f"{1000 * r['seconds'] / points:>17.2f}", flush=True)
    finally:
        if args.old:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "old-tree")],
                           capture_output=True)


if __name__ == "__main__":
    main()
