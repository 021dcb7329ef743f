"""Trains the `digits32` step 20 iterations in fp32 and writes a small JSON summary: the
reference of test_train_fp32_equality.py, and the script that makes it (not a test itself).

    python tests/unit/fp32_run.py --out tests/data/fp32_reference.json        # remake the reference
    python tests/unit/fp32_run.py --out /tmp/x.json --threads 2 --nchw      # a variant, to measure spread

The step is built as benchmarks/train_step.build_step builds it (batch 8, one process, seed 0),
at lr 1e-5 instead of the preset's 6e-4: at 6e-4 a GAN amplifies a rounding difference (another
summation order, e.g. channels_last against NCHW) to 2e-2 in the losses within 20 iterations,
at 1e-5 the trajectories stay at rounding distance, so a tight tolerance can tell another CPU's
kernels from another step. What is written, per iteration and per tensor (all in float64):
- every metric of every iteration (losses, D's outputs; the gradient norms at ticks);
- for every gradient an optimizer step applies in iteration 1 (D, D, G): its L2 norm and its dot
  product with a fixed random vector (a "projection": a change anywhere in the tensor shows);
- for every parameter and buffer of G, D and G_ema after the last iteration: sum, sum of |x|,
  max |x|, a projection, and the sum of |x - x0| and the projection of x - x0, where x0 is the
  value before training (what the 20 updates did, which the absolute checksums of a tensor
  whose entries are O(1) can hardly see at lr 1e-5), and the number of entries.
The projection vectors are drawn from a torch.Generator seeded from the tensor's name, so they
do not depend on the order in which tensors are visited.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import zlib
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 20
STATE_COLUMNS = ["sum", "abs_sum", "max_abs", "projection", "delta_abs_sum", "delta_projection", "numel"]
LR = 1e-5
LOG_EVERY = 5


def _direction(name: str, numel: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(numel, generator=generator, dtype=torch.float64)


def _short(values: list[float]) -> list[float]:
    """10 significant digits: far below any tolerance, and the reference stays small."""
    return [float(f"{v:.10g}") for v in values]


def _grad_sums(name: str, grad: torch.Tensor) -> list[float]:
    flat = grad.detach().double().flatten()  # logical order, whatever the memory format
    return _short([flat.norm().item(), flat.dot(_direction(name, flat.numel())).item()])


def _tensor_sums(name: str, value: torch.Tensor, start: torch.Tensor) -> list[float]:
    flat = value.detach().double().flatten()
    delta = flat - start.detach().double().flatten()
    direction = _direction(name, flat.numel())
    return _short([flat.sum().item(), flat.abs().sum().item(), flat.abs().max().item(), flat.dot(direction).item(),
                   delta.abs().sum().item(), delta.dot(direction).item()]) + [flat.numel()]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(threads: int, channels_last: bool | None, iterations: int = ITERATIONS) -> dict:
    torch.set_num_threads(threads)
    from benchmarks.train_step import build_step

    overrides = {"train.precision": "fp32", "train.g_lr": LR, "train.d_lr": LR}
    if channels_last is not None:
        overrides["train.channels_last"] = channels_last
    step, _ = build_step("digits32", 8, torch.device("cpu"), overrides)
    nets = {"G": step.G, "D": step.D, "G_ema": step.ema.target}
    start = {net: {n: v.detach().clone() for n, v in module.state_dict().items()} for net, module in nets.items()}

    grads: dict[str, list[dict[str, list[float]]]] = {"G": [], "D": []}
    current = {"iteration": 0}

    def capture(net: str, model: torch.nn.Module):
        def hook(optimizer, args, kwargs):
            if current["iteration"] == 1:
                grads[net].append({n: _grad_sums(n, p.grad) for n, p in model.named_parameters()
                                   if p.grad is not None})
        return hook

    step.opt_G.register_step_pre_hook(capture("G", step.G))
    step.opt_D.register_step_pre_hook(capture("D", step.D))
    metrics = []
    for iteration in range(1, iterations + 1):
        current["iteration"] = iteration
        values = step.step(iteration, tick=iteration % LOG_EVERY == 0)
        metrics.append({k: float(v) for k, v in sorted(values.items())})
    state = {net: {n: _tensor_sums(n, v, start[net][n]) for n, v in module.state_dict().items()}
             for net, module in nets.items()}
    return {
        "made_by": "python tests/unit/fp32_run.py --out tests/data/fp32_reference.json",
        "cpu": _cpu(),
        "torch": torch.__version__,
        "threads": threads,
        "channels_last": step.cfg.channels_last,
        "iterations": iterations,
        "lr": LR,
        "metrics": metrics,
        "grads_iteration_1": grads,
        "state": state,
        "state_columns": STATE_COLUMNS,
    }


def write(summary: dict, out: Path) -> None:
    """One line per tensor and per iteration, so a diff of the reference reads in review."""
    lines = ["{"]
    for key in ("made_by", "cpu", "torch", "threads", "channels_last", "iterations", "lr", "state_columns"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(summary[key])},")
    lines.append('  "metrics": [')
    lines.append(",\n".join(f"    {json.dumps(m)}" for m in summary["metrics"]))
    lines.append("  ],")
    lines.append('  "grads_iteration_1": {')
    blocks = []
    for net, steps in summary["grads_iteration_1"].items():
        inner = ",\n".join("      {\n" + ",\n".join(f"        {json.dumps(n)}: {json.dumps(v)}" for n, v in s.items())
                           + "\n      }" for s in steps)
        blocks.append(f"    {json.dumps(net)}: [\n{inner}\n    ]")
    lines.append(",\n".join(blocks))
    lines.append("  },")
    lines.append('  "state": {')
    blocks = []
    for net, tensors in summary["state"].items():
        inner = ",\n".join(f"      {json.dumps(n)}: {json.dumps(v)}" for n, v in tensors.items())
        blocks.append(f"    {json.dumps(net)}: {{\n{inner}\n    }}")
    lines.append(",\n".join(blocks))
    lines.append("  }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(summary))
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the reference: 1)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--nchw", dest="channels_last", action="store_false", default=None,
                        help="NCHW instead of the preset's channels_last")
    layout.add_argument("--channels-last", dest="channels_last", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the tree this file lives in: its biggan and benchmarks
    write(run(args.threads, args.channels_last), args.out)


if __name__ == "__main__":
    main()
