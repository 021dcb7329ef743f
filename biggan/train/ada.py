"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"): a pipeline of transformations, each applied to each image with
probability p, and p steered by D's overfitting signal r_t = E[sign(D(real))].

The pipeline has the paper's first three groups (stylegan2-ada's 'bgc'), with its strengths:
- blit: x-flip, rotation by a multiple of 90 degrees, integer translation up to 1/8 of the size;
- geom: isotropic scale (lognormal, std 0.2 octaves), rotation (uniform, applied twice with
  probability 1 - sqrt(1 - p) each, so one rotation happens with probability p), anisotropic
  scale (std 0.2 octaves), fractional translation (std 1/8 of the size);
- color: brightness (+N(0, 0.2)), contrast (x lognormal, std 0.5 octaves), luma flip, hue rotation
  (uniform), saturation (x lognormal, std 1 octave), as one 4x4 matrix on RGB.
Blit and geom compose into one affine map applied by one bilinear resample with reflected borders.
Not as stylegan2-ada: no 2x upsampling through a wavelet filter around the resample (bilinear
alone aliases a little under strong downscaling), and no filter / noise / cutout groups.

Per-sample draws come from the caller's generator, all of them whatever p is, so the stream a
batch consumes does not depend on which transformations fired. Differentiable in the images
(matrix products, `grid_sample`; twice, for R1 through the augmentation).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from biggan.config.small_data import AugmentConfig
from biggan.train import dist


def _eye(n: int, batch: int, device: torch.device) -> Tensor:
    return torch.eye(n, device=device).expand(batch, n, n).clone()


def _affine2d(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from per-sample entries."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).view(-1, 3, 3)


class _Draws:
    """Per-sample random numbers from one generator, and the gate 'this transformation fires'."""

    def __init__(self, batch: int, generator: torch.Generator, device: torch.device):
        self.batch, self.generator, self.device = batch, generator, device

    def uniform(self, *shape: int) -> Tensor:
        return torch.rand(self.batch, *shape, generator=self.generator, device=self.device)

    def normal(self, *shape: int) -> Tensor:
        return torch.randn(self.batch, *shape, generator=self.generator, device=self.device)

    def integers(self, high: int) -> Tensor:
        return torch.randint(high, (self.batch,), generator=self.generator, device=self.device)

    def gate(self, p: float) -> Tensor:
        return self.uniform() < p


def _geometry(draws: _Draws, p: float, groups: set[str], h: int, w: int) -> Tensor:
    """(B, 3, 3) maps from output to input pixel coordinates (origin at the image centre)."""
    b, device = draws.batch, draws.device
    m = _eye(3, b, device)
    zero, one = torch.zeros(b, device=device), torch.ones(b, device=device)

    def then(matrix: Tensor, fires: Tensor) -> None:
        nonlocal m
        m = m @ torch.where(fires[:, None, None], matrix, _eye(3, b, device))

    if "blit" in groups:
        flip = 1.0 - 2.0 * draws.integers(2).float()
        then(_affine2d(flip, zero, zero, one, zero, zero), draws.gate(p))
        quarter = draws.integers(4)  # exact cosines and sines of k x 90 degrees
        cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=device)[quarter]
        sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=device)[quarter]
        then(_affine2d(cos, -sin, sin, cos, zero, zero), draws.gate(p))
        shift = (draws.uniform(2) * 2.0 - 1.0) * 0.125
        then(_affine2d(one, zero, zero, one, torch.round(shift[:, 0] * w), torch.round(shift[:, 1] * h)),
             draws.gate(p))
    if "geom" in groups:
        p_rot = 1.0 - math.sqrt(max(0.0, 1.0 - min(p, 1.0)))
        scale = torch.exp2(draws.normal() * 0.2)
        then(_affine2d(scale, zero, zero, scale, zero, zero), draws.gate(p))
        for rotation in range(2):  # before and after the anisotropic scale
            theta = (draws.uniform() * 2.0 - 1.0) * math.pi
            then(_affine2d(theta.cos(), -theta.sin(), theta.sin(), theta.cos(), zero, zero), draws.gate(p_rot))
            if rotation == 0:
                aniso = torch.exp2(draws.normal() * 0.2)
                then(_affine2d(aniso, zero, zero, 1.0 / aniso, zero, zero), draws.gate(p))
        shift = draws.normal(2) * 0.125
        then(_affine2d(one, zero, zero, one, shift[:, 0] * w, shift[:, 1] * h), draws.gate(p))
    return m


def _resample(x: Tensor, pixels: Tensor) -> Tensor:
    """`x` sampled at the input positions `pixels` (B, 3, 3) gives for each output pixel."""
    b, _, h, w = x.shape
    to_pixels = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], device=x.device))
    to_unit = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], device=x.device))
    theta = (to_unit @ pixels @ to_pixels)[:, :2, :]  # affine_grid's normalised [-1, 1] units
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour(draws: _Draws, p: float, channels: int) -> Tensor:
    """(B, 4, 4) maps of homogeneous RGB; luma flip, hue and saturation need 3 channels."""
    b, device = draws.batch, draws.device
    c = _eye(4, b, device)

    def then(matrix: Tensor, fires: Tensor) -> None:
        nonlocal c
        c = torch.where(fires[:, None, None], matrix, _eye(4, b, device)) @ c

    shift = draws.normal() * 0.2
    brightness = _eye(4, b, device)
    brightness[:, :3, 3] = shift[:, None]
    then(brightness, draws.gate(p))
    gain = torch.exp2(draws.normal() * 0.5)
    then(torch.diag_embed(torch.stack([gain, gain, gain, torch.ones_like(gain)], dim=1)), draws.gate(p))
    if channels == 3:
        axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3.0)  # the luma axis
        outer = torch.outer(axis, axis)
        flip = draws.integers(2).float()[:, None, None]
        then(torch.eye(4, device=device) - 2.0 * outer * flip, draws.gate(p))
        theta = (draws.uniform() * 2.0 - 1.0) * math.pi
        then(_rotation_about(axis[:3], theta), draws.gate(p))
        saturation = torch.exp2(draws.normal() * 1.0)[:, None, None]
        then(outer + (torch.eye(4, device=device) - outer) * saturation, draws.gate(p))
    return c


def _rotation_about(axis: Tensor, theta: Tensor) -> Tensor:
    """(B, 4, 4) rotations by `theta` about the unit 3-vector `axis` (Rodrigues' formula)."""
    x, y, z = axis.tolist()
    cross = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], device=theta.device)
    outer = torch.outer(axis, axis)
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    r = cos * torch.eye(3, device=theta.device) + sin * cross + (1.0 - cos) * outer
    out = _eye(4, theta.shape[0], theta.device)
    out[:, :3, :3] = r
    return out


def ada_augment(x: Tensor, p: float, generator: torch.Generator, groups: str = "blit,geom,color") -> Tensor:
    """`x` (B, C, H, W in [-1, 1]) through ADA's pipeline at probability `p`; unchanged at p = 0."""
    if p <= 0.0:
        return x
    b, channels, h, w = x.shape
    chosen = set(groups.split(","))
    draws = _Draws(b, generator, x.device)
    if chosen & {"blit", "geom"}:
        x = _resample(x, _geometry(draws, p, chosen, h, w))
    if "color" in chosen:
        c = _colour(draws, p, channels).to(x.dtype)
        if channels == 3:
            x = torch.einsum("bij,bjhw->bihw", c[:, :3, :3], x) + c[:, :3, 3, None, None]
        else:  # brightness and contrast only: the matrix is diagonal on every channel
            x = x * c[:, 0, 0, None, None, None] + c[:, 0, 3, None, None, None]
    return x


class AdaState:
    """ADA's p and the r_t statistics it is steered by: run state, checkpointed with the weights.

    The step adds sign(D(real)) of every D step (`accumulate`, no host synchronisation) and every
    `ada_interval` D steps, counted from the iteration so a resumed run adjusts at the same steps,
    calls `adjust`: r_t over the interval, averaged over ranks with one all-reduce, so every rank
    applies the same p; then p moves by sign(r_t - target) x images / (ada_kimg x 1000)
    (stylegan2-ada's rule), kept in [0, 1]. In `fixed` mode r_t is measured and logged, p stays."""

    def __init__(self, cfg: AugmentConfig, device: torch.device):
        self.p = float(cfg.ada_p)  # the adapted probability (adaptive mode)
        self.adapted = False  # p has been adjusted: a resume keeps it rather than ada_p
        self.r_t: float | None = None  # r_t of the last interval (None before the first)
        self.signs = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of signs, count] this interval

    def p_for(self, cfg: AugmentConfig) -> float:
        return float(cfg.ada_p) if cfg.ada == "fixed" else self.p

    def due(self, cfg: AugmentConfig, d_step: int) -> bool:
        """Adjust after the `d_step`-th D step of the run (1-based)?"""
        return cfg.ada != "off" and d_step % cfg.ada_interval == 0

    def accumulate(self, real_logits: Tensor) -> None:
        logits = real_logits.detach().to(torch.float64)
        self.signs += torch.stack([logits.sign().sum(), torch.tensor(float(logits.numel()), device=logits.device,
                                                                     dtype=torch.float64)])

    def adjust(self, cfg: AugmentConfig, images: int) -> None:
        """End of an interval in which `images` real images were judged over all ranks."""
        totals = self.signs.clone()
        self.signs.zero_()
        dist.average_(totals)  # the same r_t on every rank (sum / count is unchanged by averaging both)
        total, count = totals.tolist()
        if count <= 0:
            return
        self.r_t = total / count
        if cfg.ada == "adaptive":
            direction = (self.r_t > cfg.ada_target) - (self.r_t < cfg.ada_target)
            self.p = min(1.0, max(0.0, self.p + direction * images / (cfg.ada_kimg * 1000.0)))
            self.adapted = True

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "adapted": self.adapted, "r_t": self.r_t, "signs": self.signs.cpu().tolist()}

    def load_state_dict(self, state: dict[str, Any], cfg: AugmentConfig) -> None:
        """A checkpoint's p when it was adapted, else `cfg.ada_p` (a run that turns ADA on at a resume
        starts where its config says)."""
        self.adapted = bool(state.get("adapted", False))
        self.p = float(state["p"]) if self.adapted else float(cfg.ada_p)
        self.r_t = state.get("r_t")
        signs = state.get("signs", [0.0, 0.0])
        self.signs = torch.tensor(signs, dtype=torch.float64, device=self.signs.device)
