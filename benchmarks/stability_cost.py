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
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
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
    sys.path.insert(0, str(HERE))
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
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        order = args.variants if r % 2 == 0 else args.variants[::-1]  # alternate: no variant always runs first
        for variant in order:
            out = subprocess.run([sys.executable, __file__, "--worker", variant, "--preset", args.preset,
                                  "--iterations", str(args.iterations), "--warmup", str(args.warmup),
                                  "--threads", str(args.threads), "--precision", args.precision],
                                 capture_output=True, text=True, check=True)
            times[variant].append(json.loads(out.stdout.strip().splitlines()[-1])["ms_per_iteration"])
            print(f"round {r + 1}: {variant} {times[variant][-1]:.1f} ms", file=sys.stderr, flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    print(f"{args.preset} step, CPU {cpu}, {args.threads} thread(s), {args.precision}, {args.rounds} rounds x "
          f"{args.iterations} iterations per process (median of the rounds; min-max in brackets)\n")
    print("| variant | ms per iteration | x off |")
    print("|---|---|---|")
    base = statistics.median(times["off"]) if "off" in times else None
    for variant in args.variants:
        median = statistics.median(times[variant])
        ratio = f"{median / base:.2f}" if base else "-"
        print(f"| {variant} | {median:.1f} [{min(times[variant]):.1f}-{max(times[variant]):.1f}] | {ratio} |")


if __name__ == "__main__":
    main()
