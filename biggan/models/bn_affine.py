"""Batch normalisation and its affine part in one elementwise pass, with a hand-written backward.

`ReducedBatchNorm` (batchnorm.py) computes per-channel statistics in fp32 and lets a reducer
sum them across replicas (Appendix C: cross-replica BN). This module applies them:

    out = (x - mean) * invstd * gain + bias = x * scale + shift,
    scale = invstd * gain,  shift = bias - mean * scale        (gain, bias: (B or 1, C))

as ONE `torch.addcmul` over the activation, the same fused form torch's native CPU batch-norm
kernel uses (`batch_norm_cpu_transform_input`). The hand-computed version it replaces took
four full passes forward (subtract, scale, gain, bias) and about a dozen backward through
autograd; at ch 32 it cost 2.4x the native kernel forward.

The backward is BN's textbook one, written with per-(sample, channel) sums so the
activation is read in two reductions and written in one fused pass:

    S1 = sum_hw dy,   S2 = sum_hw dy * x                   (B, C)
    dgain = invstd * (S2 - mean * S1),  dbias = S1          (per sample; summed for (1, C))
    dx = gain * invstd * dy - invstd * m1 - xhat * invstd * m2

where m1, m2 are the means of dxhat = gain * dy and of dxhat * xhat over the WHOLE batch: their
per-channel sums go through the same reducer as the statistics (a second all-reduce across
replicas), which is exactly the gradient of global-batch BN that the differentiable
all-reduce of [sum, sum of squares] gave before. The backward is not itself differentiable, so it
is `once_differentiable`: a second derivative through it raises instead of coming out wrong.
Inside `differentiable_twice()` (biggan.models.twice) the BN computes its statistics and affine
with plain differentiable ops instead (batchnorm.ReducedBatchNorm.affine). The paper's BigGAN
trains without a gradient penalty; Section 4.2's R1 differentiates D alone, which has no BN.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from biggan.models.precision import at_least_fp32


class SumReducer(Protocol):
    def reduce(self, sum: Tensor, sum_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...


def _bc(t: Tensor) -> Tensor:
    """(B or 1, C) -> (B or 1, C, 1, 1) for broadcasting over an image batch."""
    return t[:, :, None, None]


def apply_scale_shift(x: Tensor, mean: Tensor, invstd: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    """x * scale + shift in one pass, computed in fp32 and returned in x's dtype."""
    scale = invstd * gain
    shift = bias - mean * scale
    out = torch.addcmul(_bc(shift), x, _bc(scale))
    return out if out.dtype == x.dtype else out.to(x.dtype)


class NormalizeAffine(torch.autograd.Function):
    """Training-mode BN + affine given already-reduced statistics (see module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, gain: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor,
                count: Tensor, reducer: SumReducer) -> Tensor:
        ctx.save_for_backward(x, gain, mean, invstd, count)
        ctx.reducer = reducer
        ctx.shapes = (gain.shape, bias.shape)
        return apply_scale_shift(x, mean, invstd, gain, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor):
        x, gain, mean, invstd, count = ctx.saved_tensors
        gain_shape, bias_shape = ctx.shapes
        dyf, xf = at_least_fp32(dy), at_least_fp32(x)
        s1 = dyf.sum((2, 3))  # (B, C)
        s2 = (dyf * xf).sum((2, 3))
        dot = (s2 - mean * s1) * invstd  # sum_hw dy * xhat, per sample and channel
        dgain = dot if gain_shape[0] != 1 else dot.sum(0, keepdim=True)
        dbias = s1 if bias_shape[0] != 1 else s1.sum(0, keepdim=True)
        dx = None
        if ctx.needs_input_grad[0]:
            g = gain.expand_as(s1)
            # Sums of dxhat and dxhat * xhat over this replica's batch, then over all replicas.
            m1, m2, _ = ctx.reducer.reduce((g * s1).sum(0), (g * dot).sum(0), count)
            m1, m2 = m1 / count, m2 / count
            alpha = -invstd * invstd * m2  # coefficient of x
            beta = invstd * (mean * invstd * m2 - m1)  # constant per channel
            dx = torch.addcmul(_bc(beta[None]), xf, _bc(alpha[None]))
            dx.addcmul_(dyf, _bc(g * invstd))
            dx = dx if dx.dtype == x.dtype else dx.to(x.dtype)
        return dx, dgain, dbias, None, None, None, None
