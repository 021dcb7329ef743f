"""Side-by-side timing of step variants, shared by the cost benchmarks (stability_cost.py,
small_data_cost.py): every variant runs in its own process (a fresh allocator, no warm caches from
another variant) and the rounds alternate through the variants, so machine load that comes and goes
spreads over all of them; a figure is the median over the rounds."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path


def alternate_rounds(script: str, variants: list[str], rounds: int, args: list[str]) -> tuple[dict, dict]:
    """Run `script --worker VARIANT *args` once per variant per round; the worker prints one JSON line
    with ms_per_iteration. Returns ({variant: [ms per round]}, the last worker's JSON)."""
    times: dict[str, list[float]] = {v: [] for v in variants}
    last: dict = {}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # no variant always runs first
        for variant in order:
            out = subprocess.run([sys.executable, script, "--worker", variant, *args],
                                 capture_output=True, text=True, check=True)
            last = json.loads(out.stdout.strip().splitlines()[-1])
            times[variant].append(last["ms_per_iteration"])
            print(f"round {r + 1}: {variant} {times[variant][-1]:.1f} ms", file=sys.stderr, flush=True)
    return times, last


def print_table(times: dict[str, list[float]]) -> None:
    """Markdown: each variant's median [min-max] and its ratio to `off`."""
    print("| variant | ms per iteration | x off |")
    print("|---|---|---|")
    base = statistics.median(times["off"]) if "off" in times else None
    for variant, values in times.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}" if base else "-"
        print(f"| {variant} | {median:.1f} [{min(values):.1f}-{max(values):.1f}] | {ratio} |")


def device_name(device: str = "cpu") -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    if Path("/proc/cpuinfo").exists():
        return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor())
    return platform.processor()
