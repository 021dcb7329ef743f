"""Hinge loss (Section 3: "we use the hinge version of the adversarial loss", Lim & Ye 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """D loss = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; returns (total, real part, fake part)."""
    loss_real = F.relu(1.0 - real_logits).mean()
    loss_fake = F.relu(1.0 + fake_logits).mean()
    return loss_real + loss_fake, loss_real, loss_fake


def hinge_g(fake_logits: Tensor) -> Tensor:
    """G loss = -E[D(G(z))]."""
    return -fake_logits.mean()
