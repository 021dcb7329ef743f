"""Latents: the truncation trick and the priors of Appendix E.

- Truncation trick (Section 3.1): z ~ N(0, I) with every value whose magnitude exceeds the
  threshold RESAMPLED until all lie within it (never clipped, never rescaled).
- Priors (Appendix E): "normal" (default), "bernoulli" ({0, 1} with p = 0.5) and
  "censored_normal" (max(N(0, I), 0)).

Standing statistics live in `biggan.sampling.standing`, sheets in `biggan.sampling.sheets`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Prior = Literal["normal", "bernoulli", "censored_normal"]


def truncated_normal(
    shape: tuple[int, ...] | list[int] | torch.Size,
    threshold: float | None,  # None = plain N(0, I)
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,  # where the result goes (drawn on generator's device)
) -> Tensor:
    """N(0, I) truncated at +-threshold by resampling out-of-range values (Section 3.1)."""
    draw_device = generator.device if generator is not None else device
    z = torch.randn(*shape, generator=generator, device=draw_device)
    if threshold is not None:
        if threshold <= 0:
            raise ValueError(f"truncation threshold must be positive, got {threshold}")
        # Loop on the mask: each pass redraws only the values still outside; with threshold t
        # a value survives with probability P(|N| <= t), so this ends after few passes.
        outside = z.abs() > threshold
        while bool(outside.any()):
            redraw = torch.randn(int(outside.sum()), generator=generator, device=draw_device)
            z[outside] = redraw
            outside = z.abs() > threshold
    return z.to(device) if device is not None else z


def sample_latents(
    batch: int,
    dim_z: int,
    truncation: float | None,  # resampling threshold; ignored for the Bernoulli prior
    prior: Prior = "normal",  # ModelConfig.latent (Appendix E)
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A batch of latents from the chosen prior."""
    if prior == "normal":
        return truncated_normal((batch, dim_z), truncation, generator, device)
    if prior == "censored_normal":
        # Appendix E: max(N(0, I), 0); truncation acts on the underlying normal.
        return truncated_normal((batch, dim_z), truncation, generator, device).clamp_min(0.0)
    if prior == "bernoulli":
        draw_device = generator.device if generator is not None else device
        z = torch.bernoulli(torch.full((batch, dim_z), 0.5, device=draw_device), generator=generator)
        return z.to(device) if device is not None else z
    raise ValueError(f"unknown latent prior {prior!r}; use normal, bernoulli or censored_normal")




def balanced_labels(num_samples: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """Every class equally often (up to one), in a random order: class-conditional IS/FID
    samples y uniformly (BigGAN-PyTorch `sample` draws y uniformly); balancing removes the
    class-count noise of small evaluations."""
    labels = torch.arange(num_samples, dtype=torch.int64) % num_classes
    return labels[torch.randperm(num_samples, generator=generator)]
