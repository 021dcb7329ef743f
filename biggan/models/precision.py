"""The pieces kept in fp32 under bf16 autocast (BN statistics and affine, SN, D's head)."""

from __future__ import annotations

import torch
from torch import Tensor

_LOW = (torch.bfloat16, torch.float16)


def at_least_fp32(t: Tensor) -> Tensor:
    """`t` in fp32 if it is bf16/fp16, unchanged otherwise (fp32 and fp64 stay as they are)."""
    return t.float() if t.dtype in _LOW else t
