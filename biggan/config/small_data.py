"""Config of the small-data tools (not in the BigGAN paper, all off by default and in every preset):
differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), adaptive augmentation
(ADA, Karras et al. 2020) and the LeCam regulariser (Tseng et al. 2021). docs/small-data.md says
when to turn them on and what each did on a 10% subset of the demo digits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from biggan.config.base import Strict

# The names a policy may use; biggan.train.augment holds the ops behind them (a test keeps the two
# in step). DiffAugment's three groups are those of Zhao et al.'s DiffAugment_pytorch.py.
DIFFAUGMENT_OPS = ("color", "translation", "cutout")
# ADA's groups of stylegan2-ada's 'bgc' pipeline: pixel blitting, general geometric, colour.
ADA_GROUPS = ("blit", "geom", "color")


def _names(value: str, known: tuple[str, ...], what: str) -> str:
    """`value` as a normalised comma list of names from `known` ('' stays '')."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names repeat in {value!r}")
    return ",".join(names)


class AugmentConfig(Strict):
    """Augmentation of every image D sees (real and generated, in D's and G's steps and R1's real
    pass), drawn per sample from the run's seeded latent generator: exact resume holds."""

    policy: str = Field(
        "", description="DiffAugment: comma list of op groups applied in order to D's inputs, from color "
                        "(brightness, saturation, contrast), translation (1/8 of the size, zero fill) and "
                        "cutout (a half-size square); e.g. color,translation,cutout; '' = off")
    ada: Literal["off", "adaptive", "fixed"] = Field(
        "off", description="ADA: off; adaptive: each transformation applied with probability p, p adjusted from "
                           "r_t = E[sign(D(real))] toward ada_target; fixed: p = ada_p throughout (for comparison)")
    ada_p: float = Field(
        0.0, ge=0, le=1, description="ADA: the starting p (adaptive; a resumed run keeps its own) or the fixed p")
    ada_target: float = Field(
        0.6, gt=0, lt=1, description="ADA: the r_t that p steers toward (Karras et al.: 0.6); in (0, 1)")
    ada_interval: int = Field(4, ge=1, description="ADA: D steps between adjustments of p (stylegan2-ada: 4)")
    ada_kimg: float = Field(
        500.0, gt=0, description="ADA: thousands of real images over which p can move by 1 (stylegan2-ada: 500; "
                                 "short runs need less: p moves at most batch x steps / (ada_kimg x 1000))")
    ada_groups: str = Field(
        "blit,geom,color", description="ADA: transformation groups, from blit (x-flip, 90-degree rotations, "
                                       "integer translation), geom (scale, rotation, anisotropy, fractional "
                                       "translation) and color (brightness, contrast, luma flip, hue, saturation)")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        return _names(value, DIFFAUGMENT_OPS, "DiffAugment op")

    @field_validator("ada_groups")
    @classmethod
    def _known_groups(cls, value: str) -> str:
        groups = _names(value, ADA_GROUPS, "ADA group")
        if not groups:
            raise ValueError(f"name at least one ADA group of {', '.join(ADA_GROUPS)}")
        return groups

    @model_validator(mode="after")
    def _one_kind(self) -> AugmentConfig:
        # Both papers apply their own pipeline alone; stacked, D would see two augmentations whose
        # sum neither paper measured.
        if self.policy and self.ada != "off":
            raise ValueError(f"policy={self.policy!r} (DiffAugment) and ada={self.ada!r} are both on: pick one")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.policy) or self.ada != "off"


class LeCamConfig(Strict):
    """LeCam regularisation of D (Tseng et al. 2021): weight x (E[relu(D(x) - a_fake)^2] +
    E[relu(a_real - D(G(z)))^2]), a_real / a_fake moving averages of D's outputs on real and
    generated images, added to D's loss."""

    weight: float = Field(
        0.0, ge=0, description="lambda, the regulariser's weight (Tseng et al.'s CIFAR BigGAN runs: 0.3); 0 = off")
    decay: float = Field(
        0.99, ge=0, lt=1, description="decay of the moving averages of D's mean outputs (Tseng et al.: 0.99)")
