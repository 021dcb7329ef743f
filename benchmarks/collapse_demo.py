"""A collapse at demo scale, and the same runs with `train.collapse.action=rollback` and a remedy
(docs/stability.md). Each run trains the digits32 preset in this process (`--workers 0`, one
torch thread) from the embedded digits, and one JSON line per run goes to --out:

    python benchmarks/collapse_demo.py --work /tmp/collapse --settings sn-off-d g-lr --seeds 0 --iterations 400
    python benchmarks/collapse_demo.py --work /tmp/collapse --settings study --seeds 0 1 2 --evaluate

A setting is a named set of dotted overrides (SETTINGS below). `study` is the chosen collapsing
setting; `study-rollback` is it with a rollback and a remedy. With --evaluate each run's
checkpoint to evaluate (evaluate.json: before the onset of a collapse that stopped the run, else
the last) is scored by `biggan evaluate` (FID and IS with the digits classifier, as the demo scores).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_fixtures import demo_shards

BASE = {"train.log_every": 10, "train.checkpoint_every": 50, "train.keep_checkpoints": 1,
        "cluster.num_workers": 0, "train.precision": "fp32", "train.sample_every": 1000}
SETTINGS: dict[str, dict] = {
    "baseline": {},
    "both-lr-3e-3": {"train.g_lr": 3e-3, "train.d_lr": 3e-3},
    "sn-off-d": {"model.d_sn": False},
    "sn-off-g": {"model.g_sn": False},
    "g-lr": {"train.g_lr": 1e-2},
    "g-lr-3e-3": {"train.g_lr": 3e-3},
    "d-beta1": {"train.d_betas": [0.9, 0.999]},
    "sn-off-d-g-lr": {"model.d_sn": False, "train.g_lr": 3e-3},
    "sn-off-both": {"model.g_sn": False, "model.d_sn": False},
    "sn-off-both-lr": {"model.g_sn": False, "model.d_sn": False, "train.g_lr": 2e-3, "train.d_lr": 2e-3},
    "sn-off-d-lr": {"model.d_sn": False, "train.g_lr": 2e-3, "train.d_lr": 2e-3},
    "sn-off-g-g-lr": {"model.g_sn": False, "train.g_lr": 1e-2},
    "sn-off-d-d-lr": {"model.d_sn": False, "train.d_lr": 1e-2},
    "sn-off-d-d-lr-3e-3": {"model.d_sn": False, "train.d_lr": 3e-3},
    "sn-off-d-d-lr-5e-3": {"model.d_sn": False, "train.d_lr": 5e-3},
    "both-lr-5e-3": {"train.g_lr": 5e-3, "train.d_lr": 5e-3},
    "both-lr-1e-2": {"train.g_lr": 1e-2, "train.d_lr": 1e-2},
}
STUDY = "sn-off-d-d-lr-3e-3"  # the setting docs/stability.md reports (chosen from the exploration there)
REMEDY = [{"train.d_lr": 6e-4}]  # what a rollback applies in the study: D's learning rate back to the preset's
SETTINGS["study"] = SETTINGS[STUDY]
SETTINGS["study-rollback"] = {**SETTINGS[STUDY], "train.collapse.action": "rollback",
                              "train.collapse.remedies": REMEDY, "train.collapse.max_rollbacks": 3}
# Section 4.2's remedy instead: R1 at gamma 1 (the weakest strength at which the paper saw no sudden collapse).
SETTINGS["study-rollback-r1"] = {**SETTINGS[STUDY], "train.collapse.action": "rollback",
                                 "train.collapse.remedies": [{"train.d_r1_gamma": 1.0}],
                                 "train.collapse.max_rollbacks": 3}


def run_one(work: Path, shards: Path, name: str, seed: int, iterations: int) -> dict:
    from biggan.experiment import resolve_experiment
    from biggan.runs import RunStore
    from biggan.train.context import LocalContext
    from biggan.train.loop import train

    overrides = {**BASE, **SETTINGS[name], "train.seed": seed, "train.iterations": iterations}
    run = f"{name}-s{seed}-{int(time.time())}"
    cfg = resolve_experiment("digits32", overrides, str(shards), name=run, store=str(work / "runs"))
    RunStore(cfg.run_uri).write_options(cfg.model_dump(mode="json"))
    start = time.perf_counter()
    result = train(cfg, LocalContext())
    store = RunStore(cfg.run_uri)
    mark = store.evaluation_mark()
    return {"setting": name, "seed": seed, "run": cfg.run_uri, "iterations": iterations,
            "stopped_at": result.iteration, "collapsed": result.collapsed, "reason": result.reason,
            "onset": mark.get("collapse_onset"), "rollbacks": [
                {k: e[k] for k in ("collapsed_at", "onset", "to_iteration", "signal", "changed")}
                for e in store.rollbacks()],
            "evaluate": mark.get("checkpoint"), "seconds": round(time.perf_counter() - start, 1)}


def evaluate(row: dict) -> dict:
    """FID and IS of the run's checkpoint to evaluate, with `biggan evaluate` (its own process)."""
    out = subprocess.run([sys.executable, "-m", "biggan", "evaluate", "--run", row["run"]],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    result = json.loads(out.stdout)
    return {k: v for k, v in result.items() if k in ("FID", "IS", "IS_std", "checkpoint", "iteration", "metrics")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--settings", nargs="+", default=["study", "study-rollback"], choices=sorted(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--evaluate", action="store_true", help="score each run with biggan evaluate")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default: WORK/results.jsonl)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from biggan.logs import log_to_console

    log_to_console(logging.WARNING)  # rollbacks and stops; progress lines stay in each run's stats
    args.work.mkdir(parents=True, exist_ok=True)
    shards = demo_shards(args.work)
    out = args.out or args.work / "results.jsonl"
    for name in args.settings:
        for seed in args.seeds:
            row = run_one(args.work, shards, name, seed, args.iterations)
            if args.evaluate:
                row["eval"] = evaluate(row)
            print(json.dumps(row), flush=True)
            with open(out, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
