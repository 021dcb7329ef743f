"""Networks and config out of a checkpoint's state (what sampling and evaluation build on)."""

from __future__ import annotations

from typing import Any

from biggan.config import ExperimentConfig
from biggan.models import Discriminator, Generator


def config_of(state: dict[str, Any]) -> ExperimentConfig:
    """The resolved config the checkpoint was trained with."""
    return ExperimentConfig.model_validate(state["config"])


def generator_from_state(state: dict[str, Any], ema: bool = True) -> Generator:
    """G_ema (default) or the trained G of a checkpoint, in eval mode, on the CPU."""
    G = Generator(config_of(state).model)
    G.load_state_dict(state["G_ema" if ema else "G"])
    return G.eval()


def discriminator_from_state(state: dict[str, Any]) -> Discriminator:
    D = Discriminator(config_of(state).model)
    D.load_state_dict(state["D"])
    return D.eval()
