"""What the parts of benchmarks/gpu_check.py share: their command line, the result file each part
rewrites after every measurement (so a part killed at its deadline still reports), progress lines,
and the peak memory figure."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch


class Recorder:
    """OUT/part-NAME.json: notes, rows, text tables; written atomically after every change."""

    def __init__(self, out: Path, name: str, deadline: float):
        self.path, self.name, self.deadline = out / f"part-{name}.json", name, deadline
        self.data: dict = {"notes": [], "rows": [], "tables": {}}

    def say(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    def note(self, message: str) -> None:
        self.say(message)
        self.data["notes"].append(message)
        self.save()

    def row(self, **values) -> None:
        self.say(", ".join(f"{k}={_short(v)}" for k, v in values.items()))
        self.data["rows"].append(values)
        self.save()

    def table(self, title: str, text: str) -> None:
        self.data["tables"][title] = text
        self.save()

    def set(self, **values) -> None:
        self.data.update(values)
        self.save()

    def left(self) -> float:
        """Seconds to this part's deadline."""
        return self.deadline - time.time()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def peak_memory_mb(device: torch.device) -> float:
    """torch.cuda.max_memory_allocated on a GPU (since the last reset); on a CPU the process's peak
    resident set (ru_maxrss: it never goes down, so it is the part's peak so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def part_main(parts: dict[str, Callable[[Recorder, torch.device, argparse.Namespace], None]]) -> None:
    """`python benchmarks/gpu_check_X.py PART --out OUT --device D --deadline T [--tiny] [--shards S]`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=list(parts))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--deadline", type=float, required=True, help="epoch seconds: stop starting new work")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--shards", default=None)
    args = parser.parse_args()
    rec = Recorder(args.out, args.part, args.deadline)
    rec.save()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        rec.set(status="skipped: --device cuda but no CUDA GPU is visible")
        rec.say("no CUDA GPU is visible")
        return
    try:
        parts[args.part](rec, device, args)
    except Exception:  # noqa: BLE001 - the part's failure is reported in the JSON and the next part still runs
        rec.set(error=traceback.format_exc())
        rec.say(traceback.format_exc())
        raise SystemExit(1) from None
