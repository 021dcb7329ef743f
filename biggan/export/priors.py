"""Appendix E's priors inside the exported program: N(0, I) draws mapped onto the prior.

The program is handed z as N(0, I) draws (its documented input) and cannot draw numbers of its
own, so it maps each entry deterministically onto the prior its G was trained with, exactly in
distribution (the inverse-CDF idea of `truncation.py`): with u = Phi(z) ~ U(0, 1),

- uniform U[-1, 1] = 2u - 1; Bernoulli {0, 1} = [z > 0]; Bernoulli {-1, 1} = sign(z);
- categorical {-1, 0, 1}, 1/3 each = which third of N(0, 1) z falls in;
- N(0, I) x Bernoulli {0, 1}: one uniform split into two independent parts, the gate [u >= 1/2]
  and, given it, 2u - 1 ~ U(0, 1), mapped back to a normal;
- N(0, I) ++ Bernoulli {0, 1}: the first half as it is, the second half [z > 0].

A trained G samples the variance priors from N(0, I) (biggan.sampling.latents), so those, like
the normal, only truncate. Truncation acts on the normal part of a prior and nowhere else
(`biggan.sampling.latents.TRUNCATABLE`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from biggan.export.truncation import truncate_by_cdf
from biggan.sampling.latents import PRIORS

# The N(0, 1) quantile at 2/3: z beyond +-this falls in the outer thirds.
CATEGORICAL_EDGE = float(torch.special.ndtri(torch.tensor(2.0 / 3.0, dtype=torch.float64)))
_EPS = 1e-12  # keeps ndtri finite; the clamped edge has probability zero


def from_normal(z: Tensor, prior: str, truncation: Tensor | float | None = None) -> Tensor:
    """`z` [B, dim_z] of N(0, I) draws as draws of `prior`, its normal part truncated at
    `truncation` (None, <= 0 or inf: none). Only torch ops: an exported program can hold it."""
    t = 0.0 if truncation is None else truncation
    if prior in ("normal", "variance_annealing", "per_sample_variance"):
        return truncate_by_cdf(z, t)
    if prior == "censored_normal":
        return truncate_by_cdf(z, t).clamp_min(0.0)
    if prior == "normal_concat_bernoulli":
        half = z.shape[1] - z.shape[1] // 2  # as biggan.sampling.latents: the normal half takes the odd one
        return torch.cat([truncate_by_cdf(z[:, :half], t), (z[:, half:] > 0).to(z.dtype)], dim=1)
    zd = z.to(torch.float64)
    u = torch.special.ndtr(zd)
    if prior == "uniform":
        out = u * 2.0 - 1.0
    elif prior == "bernoulli":
        out = (zd > 0).to(torch.float64)
    elif prior == "bernoulli_pm1":
        out = (zd > 0).to(torch.float64) * 2.0 - 1.0
    elif prior == "categorical":
        out = (zd > CATEGORICAL_EDGE).to(torch.float64) - (zd < -CATEGORICAL_EDGE).to(torch.float64)
    elif prior == "normal_times_bernoulli":
        normal = truncate_by_cdf(torch.special.ndtri((2.0 * u - 1.0).clamp(_EPS, 1.0 - _EPS)), t)
        out = torch.where(u >= 0.5, normal, torch.zeros_like(normal))
    else:
        raise ValueError(f"unknown latent prior {prior!r}; use one of {', '.join(PRIORS)}")
    return out.to(z.dtype)
