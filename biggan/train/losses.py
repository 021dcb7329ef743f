"""Hinge loss (Section 3: "we use the hinge version of the adversarial loss", Lim & Ye 2017) and
the R1 penalty of Section 4.2 (eq. 5, Mescheder et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.precision import at_least_fp32
from biggan.models.twice import differentiable_twice


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """D loss = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; returns (total, real part, fake part)."""
    loss_real = F.relu(1.0 - real_logits).mean()
    loss_fake = F.relu(1.0 + fake_logits).mean()
    return loss_real + loss_fake, loss_real, loss_fake


def hinge_g(fake_logits: Tensor) -> Tensor:
    """G loss = -E[D(G(z))]."""
    return -fake_logits.mean()


def r1_penalty(D: nn.Module, real: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(D's logits on `real`, E ||grad_x D(x)||^2 over the batch) with a graph through both, so
    the penalty's gradient reaches D's weights: R1 = gamma / 2 times the second (eq. 5).

    D's pass is built under `differentiable_twice()`: its custom autograd pieces use plain ops,
    whose backward autograd differentiates again (biggan.models.twice). D has no batch
    statistics, so the gradient of the summed logits with respect to the batch is each image's
    own gradient.
    """
    real = real.detach().requires_grad_(True)
    with differentiable_twice():
        logits = at_least_fp32(D(real, y))
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return logits, at_least_fp32(grad).square().sum(dim=(1, 2, 3)).mean()
