"""Issue 27's GPU check in one command: the training step, bf16 safety, evaluation and the
CUDA-only paths, measured in one short device session (about 8 minutes of a 15-minute lease).

    python benchmarks/gpu_check.py --out $OUT                          # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gc   # rehearsal here (a few minutes)

Each part runs in its own process (benchmarks/gpu_check_train.py, gpu_check_eval.py) under its
share of --budget-s: a crash, a CUDA OOM, a hang or the budget ends that part and the next one
still runs. Lines are printed as they come, and OUT/gpu_check.json and OUT/gpu_check.md are
rewritten after every part (and each part rewrites OUT/part-NAME.json after every measurement),
so a run cut off by the device tool still reports what it measured.

Needs, beyond torch/numpy/scipy/sklearn: pydantic (+ pydantic-core, annotated-types,
typing-inspection), webdataset (+ braceexpand), torch-fidelity and, for part 4, pytest (+ pluggy,
iniconfig, pytest-timeout): docs/performance.md "GPU check (prepared, not yet run)" has the
wheels and the device-tool command. Nothing here imports Ray or Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# Part name -> (module under benchmarks/, share of the budget). The step is the headline.
PARTS = {"step": ("gpu_check_train", 0.40), "bf16": ("gpu_check_train", 0.20),
         "eval": ("gpu_check_eval", 0.27), "cuda": ("gpu_check_eval", 0.13)}
GRACE_S = 15  # after its deadline a part may finish the measurement in hand before it is killed


def device_name(device: str) -> str:
    """nvidia-smi's name of the GPU (what docs/performance.md quotes), or the CPU's model name."""
    if device == "cuda":
        try:
            query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
            out = subprocess.run(query, capture_output=True, text=True, timeout=20)
            return out.stdout.strip() or out.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"nvidia-smi failed: {err}"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render_markdown(report: dict) -> str:
    """One readable page: a header, then per part its status, notes, rows as a table, and text tables."""
    lines = ["# GPU check", "", f"- command: `{report['command']}`", f"- device: {report['device_name']}",
             f"- torch {report['torch']}, Python {report['python']}, started {report['started']}", ""]
    for name, part in report["parts"].items():
        lines += [f"## {name}: {part.get('status', 'not run')} ({part.get('seconds', 0):.0f} s)", ""]
        lines += [f"- {note}" for note in part.get("notes", [])]
        rows = part.get("rows") or []
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            lines += ["", "| " + " | ".join(_cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(_cell(row.get(k, "")) for k in keys) + " |" for row in rows]
        for title, text in (part.get("tables") or {}).items():
            lines += ["", f"{title}:", "", "```", text.rstrip(), "```"]
        if part.get("error"):
            lines += ["", "```", part["error"].rstrip()[-3000:], "```"]
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")  # a literal bar inside a markdown table cell


def write_report(out: Path, report: dict) -> None:
    for name, text in (("gpu_check.json", json.dumps(report, indent=2)), ("gpu_check.md", render_markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def run_part(name: str, args: argparse.Namespace, seconds: float) -> dict:
    """Run one part in a child process with a deadline; its last written result and how it ended."""
    module, _share = PARTS[name]
    deadline = time.time() + seconds
    result_file = args.out / f"part-{name}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).with_name(f"{module}.py")), name, "--out", str(args.out),
           "--device", args.device, "--deadline", str(deadline)]
    cmd += ["--tiny"] if args.tiny else []
    cmd += ["--shards", args.shards] if args.shards else []
    started = time.perf_counter()
    print(f"[gpu_check] part {name}: up to {seconds:.0f} s", flush=True)
    try:
        rc = subprocess.run(cmd, timeout=seconds + GRACE_S).returncode  # output streams straight through
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        status = "cut off at its time budget"
    part = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if part.get("status") and status == "ok":
        status = part["status"]  # e.g. "skipped: no CUDA", "ok, budget reached before batch 256"
    part.update(status=status, seconds=time.perf_counter() - started)
    print(f"[gpu_check] part {name}: {status} after {part['seconds']:.0f} s", flush=True)
    return part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json/.md ($OUT)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="digits32 widths at 32 px, small counts: a CPU rehearsal")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall budget for all four parts")
    parser.add_argument("--shards", default=None, help="WebDataset shard root with train/ and val/ for part 3 "
                        "(default: the embedded digits, sharded at the check's resolution)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="a subset, in order")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch  # after argument parsing: --help stays instant

    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "device_name": device_name(args.device),
              "torch": torch.__version__, "python": platform.python_version(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "tiny": args.tiny,
              "budget_s": args.budget_s, "parts": {name: {"status": "not run yet"} for name in args.parts}}
    print(f"[gpu_check] device: {report['device_name']}; torch {torch.__version__}; budget {args.budget_s:.0f} s",
          flush=True)
    write_report(args.out, report)
    end = time.time() + args.budget_s
    for index, name in enumerate(args.parts):
        remaining = end - time.time()
        shares = [PARTS[n][1] for n in args.parts[index:]]
        # Time a part leaves unused goes to the parts after it, in proportion to their shares.
        seconds = max(20.0, remaining * shares[0] / sum(shares))
        report["parts"][name] = run_part(name, args, seconds)
        write_report(args.out, report)
    print(f"[gpu_check] wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}", flush=True)


if __name__ == "__main__":
    main()
