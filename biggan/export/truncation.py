"""Truncation inside the exported program: a deterministic map of z onto the truncated normal.

Our sampler truncates by RESAMPLING every |z_i| > t (Section 3.1; BigGAN-PyTorch's
`truncated_z_sample`). A program that is handed z cannot draw new numbers reproducibly, and
clipping or rescaling z would change the distribution (a known bug of several BigGAN ports).
So the program maps each entry through the inverse CDF of the normal truncated to [-t, t]:

    z' = Phi^-1( Phi(-t) + Phi(z) (Phi(t) - Phi(-t)) )

If z ~ N(0, 1) then Phi(z) ~ U(0, 1) and z' has exactly the truncated normal's distribution,
the distribution resampling produces; the map is deterministic, monotone and elementwise, so
the same z gives the same image everywhere. It is evaluated in float64 on the lower tail only,

    z' = -sign(z) Phi^-1( a + Phi(-|z|) (1 - 2a) ),  a = Phi(-t),

(the two forms are equal by the symmetry Phi(-x) = 1 - Phi(x)), because Phi(z) rounds to 1
for z beyond ~8 in float64, while Phi(-|z|) stays representable. The result is clamped to
[-t, t], a no-op in exact arithmetic that keeps rounding from stepping outside.

A threshold <= 0 or infinite means no truncation: z passes through unchanged. The same z
values therefore give different images in `biggan sample` (which resamples) and in the
program (which maps): the two agree in distribution, not value by value.
"""

from __future__ import annotations

import torch
from torch import Tensor


def truncate_by_cdf(z: Tensor, threshold: Tensor | float) -> Tensor:
    """Map N(0, 1) draws `z` onto N(0, 1) truncated to [-threshold, threshold] (see above)."""
    if isinstance(threshold, Tensor):  # traced programs must see the input, not a constant
        t = threshold.to(device=z.device, dtype=torch.float64)
    else:
        t = torch.tensor(float(threshold), dtype=torch.float64, device=z.device)
    zd = z.to(torch.float64)
    a = torch.special.ndtr(-t)
    mapped = -torch.sign(zd) * torch.special.ndtri(a + torch.special.ndtr(-zd.abs()) * (1.0 - 2.0 * a))
    mapped = torch.minimum(torch.maximum(mapped, -t), t)
    active = (t > 0) & torch.isfinite(t)  # a tensor, not a Python bool: the program keeps both paths
    return torch.where(active, mapped, zd).to(z.dtype)
