"""biggan.models: BigGAN's G and D (Brock et al. 2019, Section 3 and Appendix B)."""

from __future__ import annotations

from biggan.config import ModelConfig
from biggan.models.discriminator import Discriminator
from biggan.models.generator import Generator


def build_models(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """G (local BN reducer; swap with `set_bn_reducer` when distributed) and D."""
    return Generator(cfg), Discriminator(cfg)


__all__ = ["Generator", "Discriminator", "build_models"]
