"""Exponential moving average of G's weights for sampling (Section 4 / Appendix C, decay 0.9999).

Averages PARAMETERS only. Buffers (BN running statistics, SN u vectors and tracked singular
values) are copied from the source, not averaged: an average of power-iteration vectors or
of BN statistics belongs to no network. (BigGAN-PyTorch's `utils.ema` lerps every entry of
the state dict, buffers included.)
The EMA G's BN statistics are recomputed with standing statistics before sampling anyway.
Before `start` (paper silent; BigGAN-PyTorch starts at 20k iterations) the target simply
tracks the source (decay 0).
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(
        self,
        source: nn.Module,  # the G being trained
        target: nn.Module,  # a G of the same architecture that holds the average
        decay: float,  # Appendix C: 0.9999
        start: int,  # iteration at which averaging starts; copies before it
    ) -> None:
        self.source = source
        self.target = target
        self.decay = decay
        self.start = start
        self._pairs = self._match(dict(source.named_parameters()), dict(target.named_parameters()), "parameter")
        self._buffers = self._match(dict(source.named_buffers()), dict(target.named_buffers()), "buffer")
        # The Parameter objects themselves (not .detach() views), so a later .to() that swaps
        # their storage is still followed; updates run under no_grad.
        self._sources = [s for s, _ in self._pairs]
        self._targets = [t for _, t in self._pairs]
        self._buffer_sources = [s for s, _ in self._buffers]
        self._buffer_targets = [t for _, t in self._buffers]
        for p in target.parameters():
            p.requires_grad_(False)
        self.copy_all()

    @staticmethod
    def _match(src: dict, tgt: dict, kind: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if src.keys() != tgt.keys():
            missing = sorted(set(src) ^ set(tgt))[:5]
            raise ValueError(f"EMA source and target differ in {kind}s, e.g. {missing}")
        return [(src[name], tgt[name]) for name in src]

    @torch.no_grad()
    def copy_all(self) -> None:
        for s, t in self._pairs + self._buffers:
            t.copy_(s)

    @torch.no_grad()
    def update(self, iteration: int) -> None:
        # One foreach kernel per list instead of one op per tensor (~100 tensors in G): the
        # same per-element lerp and copy, bit for bit.
        decay = self.decay if iteration >= self.start else 0.0
        torch._foreach_lerp_(self._targets, self._sources, 1.0 - decay)  # t = decay*t + (1-decay)*s
        torch._foreach_copy_(self._buffer_targets, self._buffer_sources)
