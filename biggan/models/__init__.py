"""biggan.models: BigGAN's G and D (Brock et al. 2019, Section 3 and Appendix B) and BigGAN-deep's
(Appendix B, `model.arch=deep`). `generator_class(cfg)` / `discriminator_class(cfg)` pick the family."""

from __future__ import annotations

import torch
from torch import nn

from biggan.config import ModelConfig
from biggan.models.deep import DeepDiscriminator, DeepGenerator
from biggan.models.discriminator import Discriminator
from biggan.models.generator import Generator
from biggan.models.init import build, empty


def generator_class(cfg: ModelConfig) -> type[nn.Module]:
    """The G class of `cfg.arch`: Generator (BigGAN) or DeepGenerator (BigGAN-deep)."""
    return DeepGenerator if cfg.arch == "deep" else Generator


def discriminator_class(cfg: ModelConfig) -> type[nn.Module]:
    """The D class of `cfg.arch`: Discriminator (BigGAN) or DeepDiscriminator (BigGAN-deep)."""
    return DeepDiscriminator if cfg.arch == "deep" else Discriminator


def build_models(cfg: ModelConfig, generator: torch.Generator | None = None) -> tuple[nn.Module, nn.Module]:
    """G (local BN reducer; swap with `set_bn_reducer` when distributed) and D of `cfg.arch`,
    initialised from `generator` alone, G first (biggan.models.init: the same tensors as the
    seeded construction). `generator=None` draws from the process's global RNG: for tests and
    scripts, never library code (a test keeps biggan/ from calling it that way)."""
    G_cls, D_cls = generator_class(cfg), discriminator_class(cfg)
    if generator is None:
        return G_cls(cfg), D_cls(cfg)
    return build(G_cls, cfg, generator=generator), build(D_cls, cfg, generator=generator)


def seeded(seed: int) -> torch.Generator:
    """The CPU generator networks are initialised from (the global RNG is never touched)."""
    return torch.Generator(device="cpu").manual_seed(seed)


__all__ = ["DeepDiscriminator", "DeepGenerator", "Discriminator", "Generator", "build_models",
           "discriminator_class", "empty", "generator_class", "seeded"]
