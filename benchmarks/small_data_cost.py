"""What each small-data tool costs per training step (docs/small-data.md): the digits32 step (2 D
steps + 1 G step, built as benchmarks/train_step.py builds it) with DiffAugment, ADA or LeCam on
against all off.

    python benchmarks/small_data_cost.py                    # digits32 on CPU, 1 thread, 5 rounds
    python benchmarks/small_data_cost.py --device cuda --preset imagenet128 --batch 64 --precision bf16

Every variant runs in its own process and the rounds alternate through the variants, so load that
comes and goes on a shared machine spreads over all of them; each figure is the median over the
rounds of one process's mean milliseconds per iteration after warm-up (as
benchmarks/stability_cost.py). ADA is timed at a fixed p of 0.5: its cost hardly depends on p
(every draw and the one resample happen whatever fires) except at p = 0, where it is skipped; the
adaptive variant adds r_t's bookkeeping and one host read every 4 D steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from variant_rounds import alternate_rounds, device_name, print_table  # noqa: E402

VARIANTS: dict[str, dict] = {
    "off": {},
    "diffaugment": {"train.augment.policy": "color,translation,cutout"},
    "diffaugment-tc": {"train.augment.policy": "translation,cutout"},  # BigGAN-CIFAR's policy in Zhao et al.
    "ada-fixed": {"train.augment.ada": "fixed", "train.augment.ada_p": 0.5},
    "ada-adaptive": {"train.augment.ada": "adaptive", "train.augment.ada_p": 0.5},
    "lecam": {"train.lecam.weight": 0.3},
    "diffaugment+lecam": {"train.augment.policy": "color,translation,cutout", "train.lecam.weight": 0.3},
}


def worker(variant: str, preset: str, batch: int | None, device: str, iterations: int, warmup: int,
           threads: int, precision: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from train_step import build_step

    dev = torch.device(device)
    step, _ = build_step(preset, batch, dev, {"train.precision": precision, **VARIANTS[variant]})

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup):
        step.step(i + 1, tick=False)
    sync()
    start = time.perf_counter()
    for i in range(iterations):
        step.step(warmup + i + 1, tick=False)
    sync()
    seconds = time.perf_counter() - start
    return {"variant": variant, "ms_per_iteration": 1000 * seconds / iterations, "precision": step.cfg.precision,
            "batch": step.cfg.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits32")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the preset's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=16, help="timed iterations per process (a multiple of 2)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    common = ["--preset", args.preset, "--device", args.device, "--iterations", str(args.iterations),
              "--warmup", str(args.warmup), "--threads", str(args.threads), "--precision", args.precision]
    if args.batch is not None:
        common += ["--batch", str(args.batch)]
    if args.worker:
        print(json.dumps(worker(args.worker, args.preset, args.batch, args.device, args.iterations, args.warmup,
                                args.threads, args.precision)))
        return
    times, last = alternate_rounds(__file__, args.variants, args.rounds, common)
    print(f"{args.preset} step (batch {last['batch']}, 2 D + 1 G steps), {device_name(args.device)}, {args.threads} "
          f"thread(s), {args.precision}, {args.rounds} rounds x {args.iterations} iterations per process "
          f"(median of the rounds; min-max in brackets)\n")
    print_table(times)

if __name__ == "__main__":
    main()
