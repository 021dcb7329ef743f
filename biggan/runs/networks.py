"""Networks and config out of a checkpoint's state (what sampling and evaluation build on)."""

from __future__ import annotations

from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.models import Discriminator, Generator, discriminator_class, empty, generator_class


def config_of(state: dict[str, Any]) -> ExperimentConfig:
    """The resolved config the checkpoint was trained with."""
    return ExperimentConfig.model_validate(state["config"])


def generator_from_state(state: dict[str, Any], ema: bool = True, channels_last: bool = False) -> Generator:
    """G_ema (default) or the trained G of a checkpoint, in eval mode, on the CPU.

    `channels_last`: NHWC weights, so activations follow. Samplers pass the run's
    train.channels_last: on a CPU a nearest-neighbour upsample in NCHW took 8x as long as in NHWC
    at eval batches (docs/performance.md), and convolutions are 1.1-1.35x faster."""
    model = config_of(state).model
    G = empty(generator_class(model), model)  # every tensor comes from the state: no random init
    G.load_state_dict(state["G_ema" if ema else "G"])
    return _layout(G, channels_last).eval()


def discriminator_from_state(state: dict[str, Any], channels_last: bool = False) -> Discriminator:
    model = config_of(state).model
    D = empty(discriminator_class(model), model)
    D.load_state_dict(state["D"])
    return _layout(D, channels_last).eval()


def _layout(net: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    return net.to(memory_format=torch.channels_last) if channels_last else net
