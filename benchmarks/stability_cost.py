"""What each of Section 4's knobs costs per training step, side by side in one run
(docs/stability.md): the digits32 step (2 D steps + 1 G step, as benchmarks/train_step.py builds
it) with one knob on against all off.

    python benchmarks/stability_cost.py                     # digits32 on CPU, 1 thread, 3 rounds
    python benchmarks/stability_cost.py --rounds 5 --iterations 32 --variants off r1 r1-lazy-16

Every variant runs in its own process (a fresh allocator, no warm caches from another variant),
and the rounds alternate through the variants, so machine load that comes and goes (a shared
machine) spreads over all of them; each figure is the median over the rounds of one process's
mean milliseconds per iteration after warm-up. fp32 unless --precision says otherwise (the
preset's `auto` is a measurement that could resolve differently in different processes). The
lazy R1 variants are timed over a multiple of their interval, so the mean includes its share of
regularised steps.
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
    "off": {},  # the paper's BigGAN: no Section 4 knob, between logging ticks
    "tick": {},  # a logging tick: all singular vectors refreshed, gradient and Frobenius norms per layer
    "r1": {"train.d_r1_gamma": 10.0},  # eq. 5 at every D step
    "r1-lazy-4": {"train.d_r1_gamma": 10.0, "train.d_r1_every": 4},
    "r1-lazy-16": {"train.d_r1_gamma": 10.0, "train.d_r1_every": 16},  # stylegan2-ada's interval
    "clamp": {"train.g_sigma.mode": "clamp", "train.g_sigma.value": 0.9},  # eq. 4, partial SVD per layer
    "clamp-ratio": {"train.g_sigma.mode": "clamp", "train.g_sigma.target": "ratio", "train.g_sigma.ratio": 1.05},
    "reg": {"train.g_sigma.mode": "reg", "train.g_sigma.value": 0.9},
    "reg-ratio": {"train.g_sigma.mode": "reg", "train.g_sigma.target": "ratio"},  # sigma_1 tracked every step
    "d-ortho": {"train.d_ortho_beta": 1e-4},
    "d-dropout": {"train.d_dropout_keep": 0.8},
}


def worker(variant: str, preset: str, iterations: int, warmup: int, threads: int, precision: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from train_step import build_step

    from biggan.models.spectral import singular_values
    from biggan.train.monitor import frobenius_norms, layer_grad_norms

    step, _ = build_step(preset, None, torch.device("cpu"), {"train.precision": precision, **VARIANTS[variant]})
    tick = variant == "tick"

    def one(i: int) -> None:
        step.step(i, tick=tick)
        if tick:  # what the loop adds at a tick: the record's per-layer values
            for net, module in (("G", step.G), ("D", step.D)):
                singular_values(module)
                frobenius_norms(module, net)
                torch.stack(list(layer_grad_norms(module, net).values())).tolist()

    for i in range(warmup):
        one(i + 1)
    start = time.perf_counter()
    for i in range(iterations):
        one(warmup + i + 1)
    seconds = time.perf_counter() - start
    return {"variant": variant, "ms_per_iteration": 1000 * seconds / iterations, "precision": step.cfg.precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits32")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=16, help="timed iterations per process (a multiple of 8)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.preset, args.iterations, args.warmup, args.threads, args.precision)))
        return
    times, _ = alternate_rounds(__file__, args.variants, args.rounds,
                                ["--preset", args.preset, "--iterations", str(args.iterations), "--warmup",
                                 str(args.warmup), "--threads", str(args.threads), "--precision", args.precision])
    print(f"{args.preset} step, CPU {device_name()}, {args.threads} thread(s), {args.precision}, {args.rounds} "
          f"rounds x {args.iterations} iterations per process (median of the rounds; min-max in brackets)\n")
    print_table(times)

if __name__ == "__main__":
    main()
