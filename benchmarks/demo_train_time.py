"""Training time of `biggan demo`'s run without Ray: 2 gloo processes x 8 images, cross-replica BN.

    python benchmarks/demo_train_time.py --work /tmp/demo-time                 # this checkout
    python benchmarks/demo_train_time.py --work /tmp/demo-time --quality       # + the demo's bar
    python benchmarks/demo_train_time.py --work /tmp/demo-deep --quality --preset digits32-deep --set train.seed=1

The digits32 preset (or digits32-deep, --preset) as the demo trains it (1,000 iterations, global batch 16 over 2 workers
with one thread each, shards read in-process, checkpoints and sample sheets every 250), run by
this checkout's loop under torch.distributed (gloo), the same
process group Ray Train's TorchTrainer sets up, without Ray's own start-up (~20-25 s, measured here).
Prints the wall time of training; with --quality it then runs the demo's quality
check and memorization check on the checkpoint the run marked for evaluation (class agreement
>= 0.9 mean and >= 0.75 worst class, FID drop >= 5x, no copying).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from bench_fixtures import demo_shards, free_port  # benchmarks/, on sys.path when a script runs


def _worker(rank: int, world: int, port: int, cfg_json: str, out: str) -> None:
    torch.set_num_threads(1)  # Ray gives each demo worker one CPU
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        from biggan.config import ExperimentConfig
        from biggan.train.allocator import keep_freed_memory
        from biggan.train.context import LocalContext
        from biggan.train.loop import train

        keep_freed_memory()  # as a Ray worker sets it where it starts (biggan.train.allocator)
        cfg = ExperimentConfig.model_validate_json(cfg_json)
        started = time.perf_counter()
        result = train(cfg, LocalContext())
        seconds = time.perf_counter() - started
        Path(out, f"rank{rank}.json").write_text(json.dumps({"seconds": seconds, "iteration": result.iteration,
                                                             "reason": result.reason}))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for demo data, shards and the run")
    parser.add_argument("--iterations", type=int, default=None, help="default: the preset's (1,000)")
    parser.add_argument("--quality", action="store_true", help="then check the demo's quality bar")
    parser.add_argument("--preset", default="digits32", choices=["digits32", "digits32-deep"],
                        help="the demo's preset (biggan demo --preset)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override, e.g. train.seed=1 (repeatable)")
    args = parser.parse_args()
    import biggan
    from biggan.config import apply_overrides, parse_override
    from biggan.presets import get_preset
    from biggan.runs import RunStore

    work = args.work.resolve()
    shards = demo_shards(work)
    pairs = {"run_root": str(work / "runs"), "name": f"demo-{int(time.time())}", "model.num_classes": 10,
             "data.train_shards": str(shards / "train"), "data.val_shards": str(shards / "val")}
    if args.iterations is not None:
        pairs["train.iterations"] = args.iterations
    pairs.update(parse_override(text) for text in args.overrides)
    cfg = apply_overrides(get_preset(args.preset), pairs)
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    print(f"biggan from {Path(biggan.__file__).parent}; {args.preset} {' '.join(args.overrides)}; run {store.uri}",
          flush=True)
    out = work / "timing"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(2, free_port(), cfg.model_dump_json(), str(out)), nprocs=2, join=True)
    wall = time.perf_counter() - started
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    print(f"training: {ranks[0]['iteration']} iterations, {ranks[0]['reason']}; loop {ranks[0]['seconds']:.0f} s "
          f"on rank 0 ({ranks[0]['seconds'] / ranks[0]['iteration'] * 1000:.0f} ms per iteration), "
          f"{wall:.0f} s with process start", flush=True)
    if args.quality:
        from biggan.eval.agreement import quality_check
        from biggan.eval.memorization import memorization_check

        quality = quality_check(store, None, None)  # the checkpoint the run marked for evaluation
        memo = memorization_check(store, None)
        agree = quality["agreement"]
        print(f"quality ({quality['checkpoint']}): agreement {agree['mean']:.3f} mean / {agree['min']:.3f} worst; "
              f"FID {quality['fid_untrained']:.1f} -> {quality['fid_final']:.2f} ({quality['fid_drop']:.1f}x); "
              f"copying flag {memo['copying_flag']}; passes {quality['passes']}", flush=True)


if __name__ == "__main__":
    main()
