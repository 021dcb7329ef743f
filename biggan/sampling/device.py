"""Where sampling and evaluation run: `eval.device` is `auto` (the GPU when there is one), `cpu` or
`cuda[:N]`. Every downstream node, the dataset classifier and the nearest-neighbour backbone use
the device this resolves to."""

from __future__ import annotations

import re

import torch

from biggan.config import ConfigError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str) -> torch.device:
    """The torch device for an `eval.device` value; a GPU that is not there is one clear error."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(spec)
    if match is None:
        raise ConfigError(f"eval.device = {spec!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"eval.device = {spec!r}: no CUDA GPU is visible in this process (use auto or cpu)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"eval.device = {spec!r}: only {torch.cuda.device_count()} GPU(s) are visible")
    return torch.device("cuda", index)
