"""How far apart two trainings ended: the measure behind the elastic tolerances (docs/elastic.md)."""

from __future__ import annotations

import torch


def divergence(a: dict, b: dict, initial: dict[str, torch.nn.Module]) -> dict[str, float]:
    """Per network of `initial` (name -> the module at its initial weights): the distance between the parameters
    of the state dicts `a[net]` and `b[net]`, over the distance training moved `a`'s from the initial ones
    (buffers such as singular vectors and running statistics left out)."""
    out = {}
    for net, module in initial.items():
        start = dict(module.named_parameters())
        apart = sum(float(((a[net][n] - b[net][n]) ** 2).sum()) for n in start) ** 0.5
        moved = sum(float(((a[net][n] - p.detach()) ** 2).sum()) for n, p in start.items()) ** 0.5
        out[net] = apart / moved
    return out
