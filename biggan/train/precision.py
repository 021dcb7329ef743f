"""Which arithmetic the training step runs in: fp32, or bf16 autocast where it pays.

`train.precision`: "fp32" (the default: bit-for-bit reproducible), "bf16" (autocast on any
device), or "auto": bf16 on a CUDA GPU with bf16 support and on a CPU with AMX-BF16 tiles,
fp32 elsewhere. AVX512-BF16 alone is NOT enough: on this repository's 2-core Intel Xeon
(AVX512-BF16, no AMX) a bf16 3x3 convolution forward + backward ran 1.3-1.8x SLOWER than
fp32 and a bf16 GEMM at half fp32's rate (docs/performance.md), because the dot-product
instruction has no more throughput than two fp32 FMAs there. Under autocast the model keeps
SN power iteration, BN statistics, the cBN gain and bias, D's output head and the losses in
fp32 (see biggan.models.precision).
"""

from __future__ import annotations

import contextlib

import torch


def cpu_has_amx_bf16() -> bool:
    """AMX tiles (Sapphire Rapids and later): where bf16 CPU matmuls and convs beat fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def resolve_precision(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16": the arithmetic `precision` ("fp32", "bf16", "auto") means on `device`."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_amx_bf16() else "fp32"
    return "fp32"


def autocast_for(device: torch.device, precision: str):
    """The autocast context of one forward pass (a no-op context in fp32)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
