"""biggan.models: BigGAN's G and D (Brock et al. 2019, Section 3 and Appendix B)."""

from __future__ import annotations

import torch

from biggan.config import ModelConfig
from biggan.models.discriminator import Discriminator
from biggan.models.generator import Generator
from biggan.models.init import build, empty


def build_models(cfg: ModelConfig, generator: torch.Generator | None = None) -> tuple[Generator, Discriminator]:
    """G (local BN reducer; swap with `set_bn_reducer` when distributed) and D, initialised from
    `generator` alone, G first (biggan.models.init: the same tensors as the seeded construction).
    `generator=None` draws from the process's global RNG: for tests and scripts, never library code
    (a test keeps biggan/ from calling it that way)."""
    if generator is None:
        return Generator(cfg), Discriminator(cfg)
    return build(Generator, cfg, generator=generator), build(Discriminator, cfg, generator=generator)


def seeded(seed: int) -> torch.Generator:
    """The CPU generator networks are initialised from (the global RNG is never touched)."""
    return torch.Generator(device="cpu").manual_seed(seed)


__all__ = ["Generator", "Discriminator", "build_models", "empty", "seeded"]
