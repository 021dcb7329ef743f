"""Peak memory of the evaluate node and the truncation curve against the number of samples.

A small G at 128 px (random weights: memory does not depend on what G learned) is scored with the
dataset-classifier extractor against the embedded digits sharded at 128 px. Every measurement
runs in its own process and reads its own peak RSS (getrusage). With `--old COMMIT` the evaluate
node of that commit (a git worktree of it) is measured beside today's, in alternation.

    python benchmarks/eval_memory.py                                  # 5,000 and 50,000 samples
    python benchmarks/eval_memory.py --old e7a81d3 --samples 5000 50000 --truncation-samples 2000 20000
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

from bench_fixtures import random_weights_run  # benchmarks/, on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
MODEL = {"resolution": 128, "num_classes": 10, "ch": 2, "dim_z": 120, "g_attention": None, "d_attention": None}
THRESHOLDS = [2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.04]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def prepare(work: Path, threads: int) -> None:
    """Digits at 128 px, a classifier, and a run with one checkpoint of a random small G."""
    import torch

    torch.set_num_threads(threads)
    from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, ShardConfig
    from biggan.data.demo import write_demo_data
    from biggan.data.shard import shard_dataset
    from biggan.eval.classifier import train_classifier

    demo = write_demo_data(work / "demo")
    for split in ("train", "val"):
        shard_dataset(ShardConfig(source="imagenet", root=demo.imagenet_root, split=split, out=work / split,
                                  resolution=128, samples_per_shard=500))
    train_classifier(str(work / "train"), work / "classifier", str(work / "val"), epochs=1)
    cfg = ExperimentConfig(name="bench", run_root=str(work / "runs"),
                           data=DataConfig(train_shards=str(work / "train"), val_shards=str(work / "val")),
                           model=ModelConfig(**MODEL),
                           # Standing statistics as the old code took them (16 passes of the eval
                           # batch), so both commits score the same generator.
                           eval=EvalConfig(feature_extractor="dataset-classifier", batch_size=100,
                                           standing_passes=16, standing_batch=100,
                                           thresholds=THRESHOLDS, cache_dir=work / "cache"))
    random_weights_run(cfg)


def child_new(work: Path, mode: str, samples: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from biggan.eval.history import score_checkpoint
    from biggan.eval.truncation import truncation_curve_of_checkpoint
    from biggan.runs import RunStore

    store = RunStore(str(work / "runs" / "bench"))
    overrides = {"num_samples": samples, "cache_dir": str(work / "cache")}
    classifier = str(work / "classifier" / "classifier.pt")
    started = time.perf_counter()
    if mode == "evaluate":
        for metric in ("is", "fid"):
            store.evaluations.history(metric).loc.delete()  # score again every time
        out = score_checkpoint(store, "checkpoint_00000001", _eval(store, overrides), classifier)["metrics"]
        generated = samples
    else:
        out = truncation_curve_of_checkpoint(store, None, _eval(store, overrides), classifier)["operating_points"]
        generated = samples * len(THRESHOLDS)
    seconds = time.perf_counter() - started
    return {"peak_rss_mb": peak_rss_mb(), "seconds": seconds, "s_per_1000": 1000 * seconds / generated, "out": out}


def _eval(store, overrides):
    from biggan.config import ExperimentConfig, apply_overrides

    return apply_overrides(ExperimentConfig.model_validate(store.read_options()).eval, overrides)


def child_old(work: Path, samples: int, threads: int) -> dict:
    """The evaluate node of the old commit (PYTHONPATH points at its worktree): a checkpoint in
    its own format and layout, the same weights; shards and classifier written by its own code."""
    import torch

    torch.set_num_threads(threads)
    from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, ShardConfig
    from biggan.data.shard import shard_dataset
    from biggan.eval.classifier import train_classifier
    from biggan.eval.scoring import evaluate_checkpoint
    from biggan.models import build_models
    from biggan.train.checkpoint import save_checkpoint

    # Its own shard set and classifier, in its own formats, from the same demo images.
    if not (work / "old-val" / "dataset.json").is_file():
        for split in ("train", "val"):
            shard_dataset(ShardConfig(source="imagenet", root=work / "demo" / "imagenet", split=split,
                                      out=work / f"old-{split}", resolution=128, samples_per_shard=500))
    classifier = train_classifier(work / "old-train", work / "old-classifier", work / "old-val", epochs=1).path
    cfg = ExperimentConfig(name="old", run_root=work / "old-runs",
                           data=DataConfig(train_shards=work / "old-train", val_shards=work / "old-val"),
                           model=ModelConfig(**MODEL),
                           eval=EvalConfig(feature_extractor="dataset-classifier", batch_size=100,
                                           num_samples=samples, cache_dir=work / "old-cache"))
    folder = cfg.run_dir / "checkpoint_00000001"
    if not folder.is_dir():
        torch.manual_seed(0)
        G, D = build_models(cfg.model)
        save_checkpoint(folder, {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(), "opt_G": {},
                                 "opt_D": {}, "iteration": 1, "rng": {}, "data": {},
                                 "config": cfg.model_dump(mode="json")})
    started = time.perf_counter()
    out = evaluate_checkpoint(folder, classifier, cfg.eval)["metrics"]
    seconds = time.perf_counter() - started
    return {"peak_rss_mb": peak_rss_mb(), "seconds": seconds, "s_per_1000": 1000 * seconds / samples, "out": out}


def run_child(args: list[str], pythonpath: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=pythonpath)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[5000, 50000], help="evaluate: samples per run")
    parser.add_argument("--truncation-samples", type=int, nargs="*", default=[5000, 50000],
                        help="truncation curve: samples per threshold (7 thresholds)")
    parser.add_argument("--old", default=None, help="also measure this commit's evaluate node (git worktree)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODE", "SAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="biggan-eval-memory-"))
    if args.child:
        kind, mode, samples = args.child
        result = (child_old(work, int(samples), args.threads) if kind == "old"
                  else child_new(work, mode, int(samples), args.threads))
        print(json.dumps(result, default=str))
        return

    prepare(work, args.threads)
    old_tree = None
    if args.old:
        old_tree = work / "old-tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.old],
                       check=True, capture_output=True)
    common = ["--work", str(work), "--threads", str(args.threads)]
    print(f"G at 128 px, {MODEL}; dataset-classifier features; {args.threads} threads; work dir {work}")
    print(f"{'node':<18} {'code':<8} {'samples':>8} {'peak RSS (MB)':>14} {'s / 1000 samples':>17}  figures")
    try:
        # Warm the reference caches so the peaks are of scoring, not of a first reference pass.
        run_child(["--child", "new", "evaluate", "200", *common], REPO)
        if old_tree:
            run_child(["--child", "old", "evaluate", "200", *common], old_tree)
        for n in args.samples:
            variants = [("new", REPO)] + ([("old", old_tree)] if old_tree else [])
            for kind, tree in variants:
                r = run_child(["--child", kind, "evaluate", str(n), *common], tree)
                print(f"{'evaluate':<18} {kind:<8} {n:>8} {r['peak_rss_mb']:>14.0f} {r['s_per_1000']:>17.2f}  "
                      f"{ {k: round(v, 3) for k, v in r['out'].items()} }", flush=True)
        for n in args.truncation_samples:
            r = run_child(["--child", "new", "truncation", str(n), *common], REPO)
            print(f"{'truncation (x7)':<18} {'new':<8} {n:>8} {r['peak_rss_mb']:>14.0f} {r['s_per_1000']:>17.2f}  "
                  f"best FID {r['out']['best_fid']['FID']:.3f}", flush=True)
    finally:
        if old_tree:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)


if __name__ == "__main__":
    main()
