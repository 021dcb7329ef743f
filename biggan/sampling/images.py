"""Generated images in torch-fidelity's format (uint8 Bx3xHxW), batch by batch.

Evaluation at 50,000 samples and 512 px cannot hold its images (39 GB): callers consume this
stream and keep only features or running statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from biggan.sampling.latents import balanced_labels, sample_latents
from biggan.sampling.standing import generate


def to_uint8(images: Tensor) -> Tensor:
    """G output in [-1, 1] -> uint8 in [0, 255] (round to nearest, as a PNG writer would)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def generated_batches(
    G: nn.Module,  # generator in eval mode (EMA weights, standing stats already applied)
    num_samples: int,
    num_classes: int,
    truncation: float | None,  # resampling threshold (Section 3.1); None = plain prior
    prior: str,  # ModelConfig.latent
    batch_size: int,
    seed: int,  # latents and labels are a function of the seed alone
    device: torch.device | str = "cpu",
    labels: Tensor | None = None,  # fixed labels (e.g. class-wise queries); default balanced
) -> Iterator[tuple[Tensor, Tensor]]:
    """(uint8 images on `device`, labels), batch by batch, reproducible from the seed for a
    given batch size (latents are drawn per batch from one CPU generator)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if labels is None:
        labels = balanced_labels(num_samples, num_classes, generator)
    for start in range(0, num_samples, batch_size):
        y = labels[start:start + batch_size]
        z = sample_latents(int(y.numel()), G.dim_z, truncation, prior, generator, "cpu")
        yield to_uint8(generate(G, z.to(device), y.to(device))), y
