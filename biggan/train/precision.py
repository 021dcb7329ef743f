"""Which arithmetic the training step runs in: fp32, or bf16 autocast where it pays.

`train.precision`: "fp32" (the default: bit-for-bit reproducible), "bf16" (autocast on any
device), or "auto": bf16 on a CUDA GPU with bf16 support; on a CPU, bf16 where it is measured
to be faster. A CPU flag alone does not decide it: with AVX512-BF16 and no AMX, a bf16 3x3
convolution forward + backward ran 1.6-2.4x FASTER than fp32 on the AMD EPYC this project was
specified on, and 1.2-1.8x SLOWER on an Intel Xeon of the same class (docs/performance.md),
whose dot-product instruction has no more throughput than two fp32 FMAs. So `auto` times one
BigGAN-sized convolution both ways (about a quarter of a second, once per process) and takes
bf16 only at a clear margin. The training loop resolves `auto` once on rank 0, broadcasts the
answer and records it in every checkpoint, so ranks never disagree and a resumed run keeps
the arithmetic it started with.

Under autocast the model keeps SN power iteration, BN statistics, the cBN gain and bias, D's
output head and the losses in fp32 (see biggan.models.precision).
"""

from __future__ import annotations

import contextlib
import functools
import time

import torch
import torch.nn.functional as F

# bf16 must beat fp32 by this factor: well clear of timing noise on a shared machine, and far
# from both sides measured (0.55-0.8 on the Xeon, 1.6-2.4 on the EPYC).
BF16_MIN_SPEEDUP = 1.25


def cpu_has_amx_bf16() -> bool:
    """AMX tiles (Sapphire Rapids and later): where bf16 CPU matmuls and convs beat fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def cpu_has_bf16_dot() -> bool:
    """AVX512-BF16 (Cooper Lake, AMD Zen 4 and later): bf16 in hardware, worth a measurement."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def _conv_seconds(bf16: bool, x: torch.Tensor, w: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = F.conv2d(x, w, padding=1)
    y.float().sum().backward()
    return time.perf_counter() - start


@functools.cache
def cpu_bf16_speedup(threads: int) -> float:
    """fp32 time / bf16-autocast time of a 3x3 convolution forward + backward on this CPU at
    `threads` threads (a G block's shape at the demo's width, channels_last, as training runs
    it). Best of 5 each, alternated, so a burst of load elsewhere falls on both."""
    del threads  # part of the cache key: the answer can differ with the thread count
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 64, 16, 16, generator=generator).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(True)
    fp32, bf16 = [], []
    for repeat in range(7):
        fp32.append(_conv_seconds(False, x, w))
        bf16.append(_conv_seconds(True, x, w))
        if repeat < 2:  # warm-up: oneDNN builds its kernels on the first calls
            fp32.clear()
            bf16.clear()
    return min(fp32) / min(bf16)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16": the arithmetic `precision` ("fp32", "bf16", "auto") means on `device`."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        if cpu_has_amx_bf16():
            return "bf16"
        if cpu_has_bf16_dot() and cpu_bf16_speedup(torch.get_num_threads()) >= BF16_MIN_SPEEDUP:
            return "bf16"
    return "fp32"


def autocast_for(device: torch.device, precision: str):
    """The autocast context of one forward pass (a no-op context in fp32)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
