"""Batch-norm statistics stored per truncation value (TF-Hub's BigGAN-deep generators).

DeepMind's TF-Hub BigGAN-deep modules do not compute standing statistics (Appendix C.1) when
they sample: every BN holds means and variances precomputed at 51 truncation values
psi = 0, 0.02, ..., 1 and picks them by the truncation it is called with, interpolating between
neighbours. `pytorch-pretrained-biggan` keeps them as `running_means` / `running_vars` [51, C] per
BN. A G imported from those files (biggan.interop.pretrained) carries them in this module, one
[points, sum of C] table each, in `batchnorms(G)` order, and `load_into_` puts the statistics for
one truncation into every BN's running statistics, in place of standing statistics.

Truncation conventions. TF-Hub's psi SCALES z drawn from a normal truncated at 2 (z = psi *
truncnorm(-2, 2)) and picks statistics at psi; ours (Section 3.1) RESAMPLES every |z| > T. Sampling
at our threshold T uses the statistics at psi = min(T / 2, 1): the same support [-T, T].
Untruncated (T = None) uses psi = 1.

The interpolation is pytorch-pretrained-biggan's as it is, so an imported G samples exactly as
its users' code does: with coef, i = modf(psi / step), the statistics are table[i] * coef +
table[i + 1] * (1 - coef) (the weights are the other way round from a linear interpolation; at
the grid points, coef == 0, both give table[i]).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from biggan.models.batchnorm import batchnorms


class TruncationStatistics(nn.Module):
    def __init__(
        self,
        points: int,  # truncation values, evenly spaced over [0, 1] (TF-Hub: 51)
        channels: list[int],  # num_features of every BN of G, in batchnorms(G) order
    ) -> None:
        super().__init__()
        if points < 2:
            raise ValueError(f"stored BN statistics need at least 2 truncation points, got {points}")
        self.points = points
        self.channels = list(channels)
        self.register_buffer("means", torch.zeros(points, sum(channels)))
        self.register_buffer("vars", torch.ones(points, sum(channels)))

    def reset_parameters(self) -> None:
        """Zero means, unit variances (what an untrained BN holds)."""
        with torch.no_grad():
            self.means.zero_()
            self.vars.fill_(1.0)

    def at(self, psi: float) -> tuple[Tensor, Tensor]:
        """(means, vars) [sum of C] for TF-Hub truncation `psi` in [0, 1] (see module docstring)."""
        step = 1.0 / (self.points - 1)
        coef, start = math.modf(min(max(psi, 0.0), 1.0) / step)
        start = int(start)
        if coef == 0.0:
            return self.means[start], self.vars[start]
        return (self.means[start] * coef + self.means[start + 1] * (1 - coef),
                self.vars[start] * coef + self.vars[start + 1] * (1 - coef))

    @torch.no_grad()
    def load_into_(self, G: nn.Module, truncation: float | None) -> None:
        """Every BN of G gets the stored statistics for our truncation threshold (None = untruncated)."""
        means, variances = self.at(psi_for_threshold(truncation))
        layers = batchnorms(G)
        if [layer.num_features for layer in layers] != self.channels:
            raise ValueError("stored BN statistics do not match this G's batch norms")
        offset = 0
        for layer in layers:
            width = layer.num_features
            layer.running_mean.copy_(means[offset:offset + width])
            layer.running_var.copy_(variances[offset:offset + width])
            offset += width


def psi_for_threshold(truncation: float | None) -> float:
    """TF-Hub's psi for our resampling threshold: the same support (see module docstring)."""
    if truncation is None or not math.isfinite(truncation):
        return 1.0
    return min(max(truncation, 0.0) / 2.0, 1.0)


def stored_statistics(G: nn.Module) -> TruncationStatistics | None:
    """G's stored per-truncation statistics, None for a G that uses standing statistics."""
    table = getattr(G, "truncation_statistics", None)
    return table if isinstance(table, TruncationStatistics) else None
