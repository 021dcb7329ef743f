"""Wall time of each downstream node on one checkpoint of a finished run, old code against new.

    python benchmarks/eval_nodes.py --run runs/00000-digits32 --old 18e6216     # the demo's run

For each node (evaluate: IS/FID of one checkpoint; the truncation curve; the memorization check;
the quality check) and each tree (a git worktree of `--old`, then this checkout), a fresh copy of
the run without its evaluation records is scored in its own process with `--threads` torch
threads (1: what each node gets in the demo's pipeline on 2 cores). The dataset classifier is
loaded (trained once, then cached) before the clock starts. Prints seconds of wall and CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_step_compare import REPO, old_worktree  # benchmarks/, on sys.path when a script runs

NODES = ("evaluate", "truncation", "memorization", "quality")


def child(node: str, run: str, checkpoint: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from biggan.eval.session import ensure_classifier
    from biggan.runs import RunStore
    from biggan.runs.networks import config_of

    store = RunStore(run)
    cfg = config_of(store.load_state(store.checkpoint(checkpoint)))
    classifier = None
    if cfg.eval.feature_extractor == "dataset-classifier":
        classifier = str(ensure_classifier(cfg, torch.device("cpu")).path)
    if node == "evaluate":
        from biggan.eval.history import score_checkpoint
        work = lambda: score_checkpoint(store, checkpoint, cfg.eval, classifier)  # noqa: E731
    elif node == "truncation":
        from biggan.eval.truncation import truncation_curve_of_checkpoint
        work = lambda: truncation_curve_of_checkpoint(store, checkpoint, cfg.eval, classifier)  # noqa: E731
    elif node == "memorization":
        from biggan.eval.memorization import memorization_check
        work = lambda: memorization_check(store, checkpoint, cfg.eval)  # noqa: E731
    else:
        from biggan.eval.agreement import quality_check
        work = lambda: quality_check(store, checkpoint, classifier)  # noqa: E731
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}), flush=True)


def fresh_copy(run: Path, into: Path) -> Path:
    """The run without what evaluation wrote, so every node computes instead of reading back
    (the run store's names; the checkpoint mark training wrote stays)."""
    from biggan.runs.evaluations import LEASES_DIR, METRIC_FILE, WATCH_FILE
    from biggan.runs.store import HISTORY_PLOT

    copy = into / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(
        METRIC_FILE.format(name="*"), WATCH_FILE, LEASES_DIR, HISTORY_PLOT,
        "truncation", "memorization", "quality.json"))  # the evaluation nodes' own outputs
    return copy


def measure(tree: Path, node: str, run: Path, checkpoint: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        copy = fresh_copy(run, Path(tmp))
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{Path(__file__).parent}"}
        out = subprocess.run([sys.executable, __file__, "--child", node, "--run", str(copy),
                              "--checkpoint", checkpoint, "--threads", str(threads)],
                             cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{node} in {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished run's folder")
    parser.add_argument("--checkpoint", default=None, help="default: the checkpoint the run marked for evaluation")
    parser.add_argument("--old", default=None, help="a commit to measure beside this checkout")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--nodes", nargs="+", default=list(NODES), choices=NODES)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.run, args.checkpoint, args.threads)

    from biggan.runs import RunStore

    run = Path(args.run).resolve()
    checkpoint = args.checkpoint or RunStore(str(run)).checkpoint_to_evaluate().name
    trees = ([("old", old_worktree(args.old))] if args.old else []) + [("new", REPO)]
    print(f"run {run}, {checkpoint}, {args.threads} thread(s); " + ", ".join(f"{n}: {t}" for n, t in trees))
    print(f"{'node':13} " + " ".join(f"{name + ' wall s':>11} {name + ' cpu s':>10}" for name, _ in trees))
    for node in args.nodes:
        figures = [measure(tree, node, run, checkpoint, args.threads) for _, tree in trees]
        print(f"{node:13} " + " ".join(f"{f['wall_s']:11.1f} {f['cpu_s']:10.1f}" for f in figures), flush=True)


if __name__ == "__main__":
    main()
