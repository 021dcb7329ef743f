"""How fast `digits32` (or `digits32-deep`, --preset) learns class conditioning: train in this
process (one worker, the whole global batch, local BN) and print the independent judge's agreement
of G and EMA G at every checkpoint. This produced the tuning table in docs/benchmarks.md ("How the
demo preset was tuned").

    python benchmarks/demo_tuning.py --set train.g_lr=6e-4 --set train.d_lr=6e-4 --set train.seed=1
    python benchmarks/demo_tuning.py --iterations 1500 --set train.g_lr=1e-4 --set train.d_lr=4e-4
    python benchmarks/demo_tuning.py --preset digits32-deep --set model.ch=16

Writes the demo data, shards and the run to --work (default: a temp folder); nothing is
downloaded. One thread by default, so two settings can run side by side on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_fixtures import demo_shards  # benchmarks/, on sys.path when a script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits32", choices=["digits32", "digits32-deep"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="preset override, e.g. train.g_lr=6e-4 (repeatable)")
    parser.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    parser.add_argument("--every", type=int, default=250, help="checkpoint (and judge) every N iterations")
    parser.add_argument("--per-class", type=int, default=50, help="judge samples per class")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="folder for data, shards and the run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from biggan.config import apply_overrides, parse_override
    from biggan.eval.agreement import class_agreement, train_judge
    from biggan.presets import get_preset
    from biggan.runs import RunStore
    from biggan.runs.networks import config_of, generator_from_state
    from biggan.sampling.standing import standing_stats_
    from biggan.train.allocator import keep_freed_memory
    from biggan.train.context import LocalContext
    from biggan.train.loop import train

    work = args.work or Path(tempfile.mkdtemp(prefix="biggan-demo-tuning-"))
    shards = demo_shards(work)

    pairs = dict(parse_override(text) for text in args.overrides)
    pairs.update({"run_root": str(work / "runs"), "data.train_shards": str(shards / "train"),
                  "data.val_shards": str(shards / "val"), "cluster.num_workers": 0, "model.num_classes": 10,
                  "train.checkpoint_every": args.every, "train.keep_checkpoints": 1000})
    if args.iterations is not None:
        pairs["train.iterations"] = args.iterations
    pairs.setdefault("name", f"tune-{int(time.time())}")
    cfg = apply_overrides(get_preset(args.preset), pairs)

    started = time.perf_counter()
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    keep_freed_memory()  # as the launcher's in-process path sets it (biggan.train.allocator)
    result = train(cfg, LocalContext())
    seconds = time.perf_counter() - started
    print(f"settings: {args.preset} {' '.join(args.overrides) or '(as is)'}; {result.iteration} iterations in "
          f"{seconds:.0f} s ({seconds / max(result.iteration, 1) * 1000:.0f} ms each); run {store.uri}")

    judge = train_judge(str(shards / "train"), str(shards / "val"))
    print(f"judge: RBF SVM on 16x16 grey pixels, held-out accuracy {judge.val_accuracy:.3f}; chance 0.100")
    print("iteration  G mean / worst   EMA G mean / worst")
    rows = []
    for info in store.checkpoints():
        row = {"iteration": info.iteration}
        state = store.load_state(info)
        for ema in (False, True):
            G, run_cfg = generator_from_state(state, ema=ema), config_of(state)
            # Standing statistics from the full prior, samples at threshold 1.0 (how the README
            # table was measured; the demo's quality check takes both at 1.0).
            standing_stats_(G, run_cfg.model.num_classes, run_cfg.eval.standing_passes, run_cfg.eval.standing_batch,
                            None, "cpu", prior=run_cfg.model.latent, seed=run_cfg.eval.seed)
            agreement = class_agreement(G, judge, run_cfg.model.num_classes, args.per_class, truncation=1.0)
            row["ema" if ema else "G"] = (agreement["mean"], agreement["min"])
        rows.append(row)
        print(f"{row['iteration']:9d}  {row['G'][0]:.3f} / {row['G'][1]:.3f}     "
              f"{row['ema'][0]:.3f} / {row['ema'][1]:.3f}")
    print(json.dumps({"overrides": args.overrides, "seconds": round(seconds), "curve": rows}))


if __name__ == "__main__":
    main()
