"""Batch normalization whose batch statistics come from a pluggable reducer.

BigGAN's G uses class-conditional BN (Section 3: gains and biases are linear projections of
the shared class embedding, plus the z chunk with hierarchical latents), and the paper
trains with cross-replica BN (Appendix C: statistics over all devices). Here every BN of G
computes per-channel [sum, sum of squares, count] and hands them to a `BatchStatsReducer`:
`LocalReducer` keeps them (single process), `CrossReplicaReducer` all-reduces them with the
differentiable `torch.distributed.nn.functional.all_reduce`, which works on gloo (CPU) and
NCCL (GPU) alike, unlike `torch.nn.SyncBatchNorm` (CUDA only).

Normalisation and the (conditional) affine run as one fused pass with a hand-written backward
(`bn_affine.NormalizeAffine`), whose two per-channel gradient sums go through the same reducer,
so cross-replica BN stays exact. Statistics, gain and bias are fp32 even under bf16 autocast.
"""

from __future__ import annotations

import warnings
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from biggan.models.bn_affine import NormalizeAffine, apply_scale_shift
from biggan.models.precision import at_least_fp32
from biggan.models.twice import building_twice_differentiable


@runtime_checkable
class BatchStatsReducer(Protocol):
    def reduce(self, sum: Tensor, sum_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Combine per-channel sums (shape [C]) and the element count (scalar) across replicas."""
        ...


class LocalReducer:
    """Statistics of this process's batch only (identity)."""

    def reduce(self, sum: Tensor, sum_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return sum, sum_sq, count

    def __repr__(self) -> str:
        return "LocalReducer()"


class CrossReplicaReducer:
    """Sum statistics over a process group (Appendix C: cross-replica BatchNorm).

    One all-reduce of the packed [sum, sum_sq, count] vector per call. ReducedBatchNorm
    calls it under no_grad for the statistics and again from its backward for the gradient's
    two sums, so gradients reach every replica's activations as in true global-batch BN; a
    caller that differentiates through it gets the differentiable all-reduce.
    """

    def __init__(self, group=None) -> None:  # group: torch.distributed ProcessGroup, None = world
        self.group = group

    def reduce(self, sum: Tensor, sum_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_reduce

        channels = sum.shape[0]
        packed = torch.cat([sum, sum_sq, count.reshape(1).to(sum.dtype)])
        group = self.group if self.group is not None else dist.group.WORLD
        if not (torch.is_grad_enabled() and packed.requires_grad):
            # Nothing to differentiate (ReducedBatchNorm reduces its statistics under no_grad
            # and its backward reduces its own sums): the same all-reduce, in place, without
            # the autograd wrapper's clone and warning filter.
            dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)
            return packed[:channels], packed[channels : 2 * channels], packed[2 * channels]
        with warnings.catch_warnings():
            # torch 2.14 marks it deprecated in favour of _functional_collectives.all_reduce,
            # which has no autograd formula here; this one is differentiable on gloo and NCCL.
            warnings.filterwarnings("ignore", message=".*all_reduce is deprecated.*", category=FutureWarning)
            packed = all_reduce(packed, op=dist.ReduceOp.SUM, group=group)
        return packed[:channels], packed[channels : 2 * channels], packed[2 * channels]

    def __repr__(self) -> str:
        return f"CrossReplicaReducer(group={self.group!r})"


class ReducedBatchNorm(nn.Module):
    """Normalisation core shared by the conditional and the output BN: no affine part.

    Running statistics: exponential average with `momentum` (torch's default 0.1), or a
    cumulative average when `momentum is None` (used by standing statistics, Appendix C.1).
    """

    def __init__(
        self,
        num_features: int,
        eps: float,  # Appendix C: BN epsilon 1e-4
        momentum: float | None = 0.1,  # torch default; None = cumulative average
        reducer: BatchStatsReducer | None = None,  # None = LocalReducer
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.reducer: BatchStatsReducer = reducer if reducer is not None else LocalReducer()
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def normalize(self, x: Tensor) -> Tensor:
        """(x - mean) / sqrt(var + eps), batch statistics in training, running ones in eval."""
        ones = torch.ones(1, self.num_features, device=x.device)
        return self.affine(x, ones, torch.zeros_like(ones))

    def affine(self, x: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
        """normalize(x) * gain + bias in one pass; gain and bias are (B or 1, C), fp32."""
        if not self.training:
            invstd = torch.rsqrt(self.running_var + self.eps)
            return apply_scale_shift(x, self.running_mean, invstd, gain, bias)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or gain.requires_grad or bias.requires_grad)
        if needs_grad and building_twice_differentiable():
            return self._twice_differentiable_affine(x, gain, bias)
        mean, var, n = self._batch_statistics(x)
        invstd = torch.rsqrt(var + self.eps)
        if needs_grad:
            return NormalizeAffine.apply(x, gain, bias, mean, invstd, n, self.reducer)
        return apply_scale_shift(x, mean, invstd, gain, bias)  # e.g. G under no_grad in D's step

    def _twice_differentiable_affine(self, x: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
        """The same normalisation in plain ops: statistics with a graph (through the reducer's
        differentiable all-reduce across replicas), so autograd can differentiate the backward."""
        xf = at_least_fp32(x)
        dims = (0, 2, 3)
        count = torch.tensor(float(xf.numel() // xf.shape[1]), device=x.device, dtype=xf.dtype)
        s, ss, n = self.reducer.reduce(xf.sum(dims), (xf * xf).sum(dims), count)
        mean = s / n
        var = (ss / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            self._update_running(mean, var, n)
        return apply_scale_shift(x, mean, torch.rsqrt(var + self.eps), gain, bias)

    @torch.no_grad()
    def _batch_statistics(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and biased variance over the batch (all replicas), fp32; updates running stats.

        No autograd here: NormalizeAffine's backward carries the gradient through them.
        """
        # Statistics in fp32 even under bf16 autocast: E[x^2] - E[x]^2 loses precision.
        xf = at_least_fp32(x)
        dims = (0, 2, 3)
        count = torch.tensor(float(xf.numel() // xf.shape[1]), device=x.device)
        s, ss, n = self.reducer.reduce(xf.sum(dims), (xf * xf).sum(dims), count)
        mean = s / n
        var = (ss / n - mean * mean).clamp_min(0.0)  # biased variance normalises (as torch BN)
        self._update_running(mean, var, n)
        return mean, var, n

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        unbiased = var * n / (n - 1).clamp_min(1.0)  # running var is unbiased, as in torch BN
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(unbiased, factor)


class ConditionalBatchNorm2d(nn.Module):
    """Class-conditional BN (Section 3): per-sample gain 1 + W_g c and bias W_b c.

    `c` is the conditioning vector: [shared embedding, z chunk] with the shared embedding,
    [one-hot class, z chunk] without it (Table 1 baseline: a separate class embedding per BN
    layer, which is exactly a bias-free linear map of the one-hot). The gain is one-centred
    (the `1 +` that compare_gan issue 54 found missing) and the bias zero-centred, so zero
    projection weights give plain BN.
    """

    def __init__(
        self,
        num_features: int,
        cond_dim: int,  # size of the conditioning vector c
        projection: nn.Module,  # factory output for the gain projection (cond_dim -> C)
        bias_projection: nn.Module,  # same shape, for the bias
        eps: float,
        reducer: BatchStatsReducer | None = None,
    ) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.gain = projection
        self.bias = bias_projection
        self.bn = ReducedBatchNorm(num_features, eps=eps, reducer=reducer)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # Gain and bias in fp32 even under bf16 autocast: a bf16 gain near 1 keeps only ~3
        # significant digits of the class-conditional modulation.
        with torch.autocast(device_type=x.device.type, enabled=False):
            cond = at_least_fp32(cond)
            gain = 1.0 + self.gain(cond)
            bias = self.bias(cond)
        return self.bn.affine(x, gain, bias)


class BatchNorm2d(nn.Module):
    """Plain BN with learnable gain/bias (G's output BN; unconditional as in BigGAN-PyTorch)."""

    def __init__(self, num_features: int, eps: float, reducer: BatchStatsReducer | None = None) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.bn = ReducedBatchNorm(num_features, eps=eps, reducer=reducer)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn.affine(x, self.gain.view(1, -1), self.bias.view(1, -1))


def batchnorms(module: nn.Module) -> list[ReducedBatchNorm]:
    """Every reducer-backed BN core inside `module` (conditional and output BN alike)."""
    return [m for m in module.modules() if isinstance(m, ReducedBatchNorm)]


def set_bn_reducer(module: nn.Module, reducer: BatchStatsReducer) -> int:
    """Swap the reducer of every BN in `module`; returns how many were set."""
    layers = batchnorms(module)
    for layer in layers:
        layer.reducer = reducer
    return len(layers)
