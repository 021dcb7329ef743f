"""Standing statistics and generation in eval mode.

Standing statistics (Appendix C.1, BigGAN-PyTorch `accumulate_standing_stats`): G's BN
statistics are recomputed as the average over many forward passes of random noise, then used
in eval mode, so a sample no longer depends on the batch it is drawn in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from biggan.models.batchnorm import batchnorms
from biggan.models.truncation_stats import stored_statistics
from biggan.sampling.latents import Prior, sample_latents


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

    A G that carries BN statistics stored per truncation value (TF-Hub's BigGAN-deep, imported
    by `biggan import pretrained-biggan`) samples with those at `truncation` instead, as the
    released model does (biggan.models.truncation_stats); nothing is drawn then.
    """
    stored = stored_statistics(G)
    if stored is not None:
        stored.load_into_(G, truncation)
        return G.eval()
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
