"""Latents: the truncation trick and the ten priors of Appendix E.

- Truncation trick (Section 3.1): z ~ N(0, I) with every value whose magnitude exceeds the
  threshold RESAMPLED until all lie within it (never clipped, never rescaled).
- Priors (Appendix E, "Choosing latent spaces"): the paper tried ten latent distributions as
  drop-in replacements for N(0, I) in an SA-GAN baseline (`PRIORS` below, each with the
  paper's definition). It kept N(0, I) for its main results because truncation helped more than
  any prior; Bernoulli {0, 1} and the censored normal trained fastest without truncation.

Where the truncation trick means something: it resamples NORMAL draws, so it acts on the normal
part of a prior (normal, censored normal, N x Bernoulli, the normal half of N ++ Bernoulli, and
the two variance priors, which sample N(0, I) once trained: see below). Uniform, Bernoulli and
categorical latents have no normal part; for them a threshold is ignored (`TRUNCATABLE` says
which priors it acts on, so a caller can skip a truncation sweep that would repeat one point).

Training-time priors: variance annealing and per-sample variance change the variance of z during
training only. A trained G is sampled (standing statistics, sheets, evaluation, export) from
N(0, I): the end of the annealing schedule, and the top of the per-sample range (sigma_h = 1,
the widest latent G saw). `progress` (the fraction of training done; None = a trained G) is how
the training loop tells `sample_latents` where it is.

`biggan.export.priors` maps N(0, I) draws onto every prior deterministically and exactly in
distribution, so the exported program, which is handed N(0, I) draws, samples the prior its G
was trained with.

Standing statistics live in `biggan.sampling.standing`, sheets in `biggan.sampling.sheets`.
"""

from __future__ import annotations

from typing import get_args

import torch
from torch import Tensor

from biggan.config.model import LatentPrior

# Appendix E's ten latents, in the paper's order (the names are the config's, ModelConfig.latent).
Prior = LatentPrior
PRIORS: tuple[str, ...] = get_args(Prior)

# Priors with a normal part: the only ones a truncation threshold acts on (module docstring).
TRUNCATABLE = frozenset({"normal", "censored_normal", "normal_times_bernoulli", "normal_concat_bernoulli",
                         "variance_annealing", "per_sample_variance"})

# Variance annealing: sigma from ANNEAL_START at the first iteration to ANNEAL_END at the last, linearly.
# The paper gives the end points, not the schedule's shape ("a variety of piecewise schedules"); we read
# its N(0, sigma I) as z = sigma * eps, as BigGAN-PyTorch's `z_var` is passed to normal_ as the std.
ANNEAL_START, ANNEAL_END = 2.0, 1.0
# Per-sample variance: the paper names (sigma_l, sigma_h) hyperparameters without values. sigma_h = 1
# keeps N(0, I) (what a trained G samples) the widest latent of training; sigma_l = 0.5 is our choice.
SIGMA_LOW, SIGMA_HIGH = 0.5, 1.0


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


def annealed_sigma(progress: float | None) -> float:
    """Variance annealing's sigma at `progress` (0 = first iteration, 1 = end; None = a trained G)."""
    if progress is None:
        return ANNEAL_END
    p = min(max(float(progress), 0.0), 1.0)
    return ANNEAL_START + (ANNEAL_END - ANNEAL_START) * p


def _bits(shape: tuple[int, int], generator: torch.Generator | None, draw_device) -> Tensor:
    return torch.bernoulli(torch.full(shape, 0.5, device=draw_device), generator=generator)


def sample_latents(
    batch: int,
    dim_z: int,
    truncation: float | None,  # resampling threshold of the prior's normal part; ignored where it has none
    prior: str = "normal",  # ModelConfig.latent (Appendix E)
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: float | None = None,  # fraction of training done (training's sampler); None = a trained G
) -> Tensor:
    """A batch of latents [batch, dim_z] from the chosen prior (module docstring)."""
    draw_device = generator.device if generator is not None else device
    shape = (batch, dim_z)

    def normal(width: int = dim_z) -> Tensor:
        return truncated_normal((batch, width), truncation, generator, draw_device)

    if prior == "normal":  # N(0, I): "a standard choice of the latent space which we use in the main experiments"
        z = normal()
    elif prior == "uniform":  # U[-1, 1]: "another standard choice"; performs similarly to N(0, I)
        z = torch.rand(shape, generator=generator, device=draw_device) * 2.0 - 1.0
    elif prior == "bernoulli":
        # Bernoulli {0, 1}: discrete factors ("one feature is present, another is not"); in the paper 8%
        # better IS than N(0, I) with 60% fewer iterations, but less amenable to truncation.
        z = _bits(shape, generator, draw_device)
    elif prior == "censored_normal":
        # max(N(0, I), 0), the "censored normal": sparse factors that vary continuously when active; 15-20%
        # better IS in the paper, with fewer iterations. Truncation acts on the underlying normal.
        z = normal().clamp_min(0.0)
    elif prior == "bernoulli_pm1":  # Bernoulli {-1, 1}: discrete but not sparse; "near-identically to N(0, I)"
        z = _bits(shape, generator, draw_device) * 2.0 - 1.0
    elif prior == "categorical":
        # Independent categorical in {-1, 0, 1} with equal probability: discrete, sparse, both signs.
        z = torch.randint(0, 3, shape, generator=generator, device=draw_device).float() - 1.0
    elif prior == "normal_times_bernoulli":
        # N(0, I) multiplied by Bernoulli {0, 1}: continuous and sparse with a peak at zero, like the censored
        # normal but not constrained to be positive.
        z = normal() * _bits(shape, generator, draw_device)
    elif prior == "normal_concat_bernoulli":
        # N(0, I) and Bernoulli {0, 1} concatenated, each taking half of the latent dimensions (inspired by
        # InfoGAN, Chen et al. 2016): some factors discrete, the others continuous; ~5% better than N(0, I).
        half = dim_z - dim_z // 2  # the normal half takes the odd dimension
        z = torch.cat([normal(half), _bits((batch, dim_z - half), generator, draw_device)], dim=1)
    elif prior == "variance_annealing":
        # N(0, sigma I) with sigma varied over training: "starting with sigma = 2 and annealing towards
        # sigma = 1 over the course of training mildly improved performance" (ANNEAL_START/END above).
        z = normal() * annealed_sigma(progress)
    elif prior == "per_sample_variance":
        # Per-sample variable variance: N(0, sigma_i I), sigma_i ~ U[sigma_l, sigma_h] independently for each
        # sample of a batch; meant to make G more amenable to truncation; "near-identically to N(0, I)".
        z = normal()
        if progress is not None:  # training only: a trained G samples N(0, I) (module docstring)
            sigma = SIGMA_LOW + (SIGMA_HIGH - SIGMA_LOW) * torch.rand((batch, 1), generator=generator,
                                                                      device=draw_device)
            z = z * sigma
    else:
        raise ValueError(f"unknown latent prior {prior!r}; use one of {', '.join(PRIORS)}")
    return z.to(device) if device is not None else z


def balanced_labels(num_samples: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """Every class equally often (up to one), in a random order: class-conditional IS/FID
    samples y uniformly (BigGAN-PyTorch `sample` draws y uniformly); balancing removes the
    class-count noise of small evaluations."""
    labels = torch.arange(num_samples, dtype=torch.int64) % num_classes
    return labels[torch.randperm(num_samples, generator=generator)]


__all__ = ["ANNEAL_END", "ANNEAL_START", "PRIORS", "SIGMA_HIGH", "SIGMA_LOW", "TRUNCATABLE", "Prior",
           "annealed_sigma", "balanced_labels", "sample_latents", "truncated_normal"]
