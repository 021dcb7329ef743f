"""Non-local (self-attention) block (Section 3, Appendix B; Zhang et al. 2018 SA-GAN).

Channel reductions follow BigGAN-PyTorch's `Attention`: theta and phi to C/8, g to C/2,
phi and g max-pooled 2x2 (4x fewer keys), output 1x1 conv back to C, all spectrally
normalised and bias-free, and a learnable residual gain gamma initialised to 0 so the block
starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.spectral import SNConv2d


class SelfAttention(nn.Module):
    def __init__(
        self,
        channels: int,  # C of the feature map
        num_svs: int,  # SN singular values tracked
        num_iterations: int,  # SN power iterations per forward
        sn_eps: float,  # Appendix C: 1e-4
    ) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.channels = channels

        def conv(cin: int, cout: int) -> SNConv2d:
            return SNConv2d(cin, cout, kernel_size=1, padding=0, bias=False,
                            num_svs=num_svs, num_iterations=num_iterations, eps=sn_eps)

        self.theta = conv(channels, channels // 8)
        self.phi = conv(channels, channels // 8)
        self.g = conv(channels, channels // 2)
        self.o = conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:  # cond unused: same call as blocks
        b, c, h, w = x.shape
        theta = self.theta(x).view(b, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(b, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(b, c // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (b, hw, hw/4)
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(b, c // 2, h, w))
        return x + self.gamma * o
