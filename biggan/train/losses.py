"""Hinge loss (Section 3: "we use the hinge version of the adversarial loss", Lim & Ye 2017),
the R1 penalty of Section 4.2 (eq. 5, Mescheder et al. 2018) and, for small data sets (not in the
paper), the LeCam regulariser (Tseng et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.precision import at_least_fp32
from biggan.models.twice import differentiable_twice
from biggan.train import dist


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """D loss = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; returns (total, real part, fake part)."""
    loss_real = F.relu(1.0 - real_logits).mean()
    loss_fake = F.relu(1.0 + fake_logits).mean()
    return loss_real + loss_fake, loss_real, loss_fake


def hinge_g(fake_logits: Tensor) -> Tensor:
    """G loss = -E[D(G(z))]."""
    return -fake_logits.mean()


def r1_penalty(D: nn.Module, real: Tensor, y: Tensor,
               augment: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """(D's logits on `real`, E ||grad_x D(x)||^2 over the batch) with a graph through both, so
    the penalty's gradient reaches D's weights: R1 = gamma / 2 times the second (eq. 5).

    `augment` (DiffAugment / ADA, biggan.train.augment): D judges the augmented images and the
    gradient is taken with respect to the images before augmentation, through it, as
    stylegan2-ada's R1 does; the ops are plain differentiable tensor ops, so the penalty's own
    gradient passes through them again.

    D's pass is built under `differentiable_twice()`: its custom autograd pieces use plain ops,
    whose backward autograd differentiates again (biggan.models.twice). D has no batch
    statistics, so the gradient of the summed logits with respect to the batch is each image's
    own gradient.
    """
    real = real.detach().requires_grad_(True)
    with differentiable_twice():
        logits = at_least_fp32(D(real if augment is None else augment(real), y))
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return logits, at_least_fp32(grad).square().sum(dim=(1, 2, 3)).mean()


def lecam_penalty(real_logits: Tensor, fake_logits: Tensor, anchor_real: Tensor, anchor_fake: Tensor) -> Tensor:
    """Tseng et al. 2021, eq. 3 as their released code computes it: E[relu(D(x) - a_F)^2] +
    E[relu(a_R - D(G(z)))^2], with a_R / a_F the moving averages of D's outputs on real / generated
    images. The relu (in both of their implementations, not in the paper's equation) leaves alone
    outputs already on the near side of the other anchor."""
    return F.relu(real_logits - anchor_fake).square().mean() + F.relu(anchor_real - fake_logits).square().mean()


class LeCamAnchors:
    """The moving averages a_R and a_F of D's mean outputs on real and generated images, run state
    checkpointed with the weights.

    Updated with each D evaluation's means before the penalty uses them, with zero-debiasing
    (a / (1 - decay^n), as their StyleGAN2 code's zero_debias), so they start at the first batch's
    values instead of climbing from 0. With several workers the means are averaged over ranks
    (one all-reduce of two numbers), so every rank holds the same anchors."""

    def __init__(self, device: torch.device):
        self.biased = torch.zeros(2, dtype=torch.float32, device=device)  # [real, fake], not yet debiased
        self.updates = 0  # updates folded in (the debiasing's n)

    def update(self, real_logits: Tensor, fake_logits: Tensor, decay: float) -> tuple[Tensor, Tensor]:
        means = torch.stack([real_logits.detach().float().mean(), fake_logits.detach().float().mean()])
        dist.average_(means)
        self.biased.mul_(decay).add_(means, alpha=1.0 - decay)
        self.updates += 1
        anchors = self.biased / (1.0 - decay ** self.updates)
        return anchors[0], anchors[1]

    def state_dict(self) -> dict:
        return {"biased": self.biased.cpu().tolist(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.biased = torch.tensor(state["biased"], dtype=torch.float32, device=self.biased.device)
        self.updates = int(state["updates"])
