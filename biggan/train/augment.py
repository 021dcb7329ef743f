"""Differentiable augmentation of D's inputs for small data sets: DiffAugment (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"), and the dispatch to ADA
(biggan.train.ada) behind one callable the training step applies to every image D sees.

Every op is a pure tensor function of the images and a `torch.Generator` on their device: the
same generator state gives the same per-sample draws (a batch and its replay agree exactly), and
every op is built from indexing, arithmetic and masks, so gradients reach the images (G's step
back-propagates through them into G, and R1 differentiates through them twice). The step draws
from the run's latent generator, which the loop reseeds at every checkpoint segment from
(seed, rank, iteration, rollbacks): a resumed run augments exactly as an uninterrupted one.

Images are in [-1, 1] (D's input range); the magnitudes are DiffAugment_pytorch.py's, which
were set for that range: brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5],
translation up to 1/8 of the size with zeros shifted in, cutout of a half-size square.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from biggan.config.small_data import DIFFAUGMENT_OPS, AugmentConfig
from biggan.train.ada import AdaState, ada_augment

Op = Callable[[Tensor, torch.Generator], Tensor]


def _uniform(x: Tensor, generator: torch.Generator) -> Tensor:
    """One U[0, 1) draw per sample, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def brightness(x: Tensor, generator: torch.Generator) -> Tensor:
    return x + (_uniform(x, generator) - 0.5)


def saturation(x: Tensor, generator: torch.Generator) -> Tensor:
    grey = x.mean(dim=1, keepdim=True)
    return grey + (x - grey) * (2.0 * _uniform(x, generator))


def contrast(x: Tensor, generator: torch.Generator) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * (_uniform(x, generator) + 0.5)


def _shifted_index(size: int, shift: Tensor) -> Tensor:
    """(B, size) source indices into a copy padded by `pad` = max |shift| on both sides."""
    return torch.arange(size, device=shift.device)[None, :] - shift[:, None]


def translation(x: Tensor, generator: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by whole pixels, up to `ratio` of its height / width each way, zeros
    shifted in (DiffAugment's translation)."""
    b, _, h, w = x.shape
    pad_y, pad_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-pad_y, pad_y + 1, (b,), generator=generator, device=x.device)
    tx = torch.randint(-pad_x, pad_x + 1, (b,), generator=generator, device=x.device)
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    rows = _shifted_index(h, ty) + pad_y  # output row i reads input row i - ty
    cols = _shifted_index(w, tx) + pad_x
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing picks (B, H, W, C); its backward scatters the gradient back (twice differentiable).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def cutout(x: Tensor, generator: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero one square of `ratio` x the size per image, its centre anywhere in the image, so it
    may stick out of the border (DiffAugment's cutout)."""
    b, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_y % 2), (b,), generator=generator, device=x.device)
    cx = torch.randint(0, w + (1 - size_x % 2), (b,), generator=generator, device=x.device)
    top, left = cy - size_y // 2, cx - size_x // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size_y)  # (B, H)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size_x)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


# A policy's group names -> their ops, applied in this order (DiffAugment_pytorch.py's table).
DIFFAUGMENT: dict[str, tuple[Op, ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}
assert tuple(DIFFAUGMENT) == DIFFAUGMENT_OPS  # the config validates names against the same list


def diff_augment(x: Tensor, policy: str, generator: torch.Generator) -> Tensor:
    """`x` through every op of `policy` ("color,translation,cutout"), each drawn per sample."""
    for name in filter(None, policy.split(",")):
        for op in DIFFAUGMENT[name]:
            x = op(x, generator)
    return x


class Augmenter:
    """What the training step applies to D's inputs: DiffAugment, ADA at the run's p, or nothing.

    `enabled` is False when the config turns both off: the step then calls nothing and draws
    nothing, so a run without augmentation is the run it was before augmentation existed."""

    def __init__(self, cfg: AugmentConfig, ada: AdaState, generator: torch.Generator, channels_last: bool):
        self.cfg = cfg  # the run's train.augment (a rollback's remedy may replace it: rebuilt then)
        self.ada = ada  # ADA's p and its r_t statistics (checkpointed with the run)
        self.generator = generator  # the run's latent generator: reseeded per checkpoint segment
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def __call__(self, x: Tensor) -> Tensor:
        if self.cfg.policy:
            x = diff_augment(x, self.cfg.policy, self.generator)
        elif self.cfg.ada != "off":
            x = ada_augment(x, self.ada.p_for(self.cfg), self.generator, self.cfg.ada_groups)
        else:
            return x
        return x.contiguous(memory_format=self.memory_format)
