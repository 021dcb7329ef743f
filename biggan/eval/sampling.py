"""Sampling tools: truncation trick, latent priors, standing statistics, plain generation.

- Truncation trick (Section 3.1): z ~ N(0, I) with every value whose magnitude exceeds the
  threshold RESAMPLED until all lie within it (never clipped, never rescaled).
- Priors (Appendix E): "normal" (default), "bernoulli" ({0, 1} with p = 0.5) and
  "censored_normal" (max(N(0, I), 0)).
- Standing statistics (Appendix C.1, BigGAN-PyTorch `accumulate_standing_stats`): G's BN
  statistics are recomputed as the average over many forward passes of random noise, then
  used in eval mode, so a sample no longer depends on the batch it is drawn in.

Sample sheets and interpolation grids live in `biggan.eval.sheets` (re-exported here).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
from torch import Tensor, nn

from biggan.models.batchnorm import batchnorms

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


@torch.no_grad()
def standing_stats_(
    G: nn.Module,
    num_classes: int,
    batches: int,  # forward passes averaged (BigGAN-PyTorch default 16)
    batch_size: int,
    truncation: float | None,  # sample z as it will be sampled at evaluation
    device: torch.device | str | None = None,
    prior: Prior = "normal",
    seed: int = 0,
) -> nn.Module:
    """Replace every BN's running statistics by their average over `batches` noise batches.

    Only the BN layers run in training mode (cumulative average, momentum None); everything
    else stays in eval mode, so SN u vectors and tracked singular values are left untouched
    (BigGAN-PyTorch puts the whole G in train mode, which also advances SN). G ends in eval
    mode, where BN uses these statistics and is independent of the batch.
    """
    layers = batchnorms(G)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    saved = [layer.momentum for layer in layers]
    G.eval()
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative moving average over the passes
            layer.train()
        for _ in range(batches):
            z = sample_latents(batch_size, G.dim_z, truncation, prior, generator, "cpu").to(device)
            y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
            G(z, y)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
        G.eval()
    return G


@contextlib.contextmanager
def eval_mode(G: nn.Module) -> Iterator[nn.Module]:
    """G in eval mode without gradients for the block; its previous mode is restored after."""
    was_training = G.training
    G.eval()
    try:
        with torch.no_grad():
            yield G
    finally:
        G.train(was_training)


def generate(G: nn.Module, z: Tensor, y: Tensor) -> Tensor:
    """G(z, y) in eval mode without gradients; G's previous mode is restored afterwards."""
    with eval_mode(G):
        return G(z, y)


def __getattr__(name: str):
    # Sheets import torchvision/PIL; load them only when asked for.
    if name in ("save_sample_sheet", "save_interpolations"):
        from biggan.eval import sheets

        return getattr(sheets, name)
    raise AttributeError(name)
