"""BigGAN-deep's residual blocks (Appendix B, Figure 16).

Both are bottleneck blocks: a 1x1 conv down to a quarter of the width, two 3x3 convs, a 1x1 conv
out. Where the paper's figure is silent (order of upsampling, where the ReLU before D's pooling
goes, the shortcut's conv order), they follow BigGAN-PyTorch's `BigGANdeep.GBlock` / `DBlock`,
which TF-Hub's released generators also match (pytorch-pretrained-biggan's `GenBlock`).

- G: BN-ReLU-conv1x1, BN-ReLU, [upsample], conv3x3, BN-ReLU-conv3x3, BN-ReLU-conv1x1; every BN
  is class-conditional on [shared embedding, z]. The shortcut has no conv: it keeps the first
  `out_channels` channels of x ("drops channels", Appendix B) and upsamples them.
- D: ReLU-conv1x1, ReLU-conv3x3, ReLU-conv3x3, ReLU, [avg-pool], conv1x1. The shortcut pools x
  and, when the block widens, appends `out - in` channels made by a 1x1 conv of the pooled x
  (instead of BigGAN's full 1x1 conv).

The layers are the shared ones (SN convs, conditional BN with a pluggable reducer), so
cross-replica BN, SN tracking, ortho reg, EMA and standing statistics apply unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.deep_arch import CHANNEL_RATIO
from biggan.models.layers import ConditionalBNFactory, SNFactory


class DeepGBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,  # <= in_channels: the shortcut drops channels, never adds them
        upsample: bool,  # 2x nearest-neighbour, after the second BN-ReLU (and on the shortcut)
        sn: SNFactory,
        make_bn: ConditionalBNFactory,
    ) -> None:
        super().__init__()
        if out_channels > in_channels:
            raise ValueError(f"a BigGAN-deep G block cannot widen ({in_channels} -> {out_channels} channels)")
        hidden = in_channels // CHANNEL_RATIO
        self.out_channels = out_channels
        self.upsample = upsample
        self.bn1 = make_bn(in_channels)
        self.conv1 = sn.conv(in_channels, hidden, kernel_size=1)
        self.bn2 = make_bn(hidden)
        self.conv2 = sn.conv(hidden, hidden)
        self.bn3 = make_bn(hidden)
        self.conv3 = sn.conv(hidden, hidden)
        self.bn4 = make_bn(hidden)
        self.conv4 = sn.conv(hidden, out_channels, kernel_size=1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # In-place ReLUs on fresh BN outputs, which no backward reads (as biggan.models.layers.GBlock).
        h = self.conv1(F.relu(self.bn1(x, cond), inplace=True))
        h = F.relu(self.bn2(h, cond), inplace=True)
        if self.out_channels < x.shape[1]:
            x = x[:, : self.out_channels]
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(h)
        h = self.conv3(F.relu(self.bn3(h, cond), inplace=True))
        h = self.conv4(F.relu(self.bn4(h, cond), inplace=True))
        return h + x


class DeepDBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,  # >= in_channels: the shortcut appends channels, never drops them
        downsample: bool,  # 2x2 average pooling after the last ReLU (and on the shortcut)
        sn: SNFactory,
    ) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a BigGAN-deep D block cannot narrow ({in_channels} -> {out_channels} channels)")
        hidden = out_channels // CHANNEL_RATIO
        self.downsample = downsample
        self.conv1 = sn.conv(in_channels, hidden, kernel_size=1)
        self.conv2 = sn.conv(hidden, hidden)
        self.conv3 = sn.conv(hidden, hidden)
        self.conv4 = sn.conv(hidden, out_channels, kernel_size=1)
        extra = out_channels - in_channels
        self.conv_sc = sn.conv(in_channels, extra, kernel_size=1) if extra else None

    def shortcut(self, x: Tensor) -> Tensor:
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.conv_sc is None:
            return x
        return torch.cat([x, self.conv_sc(x)], dim=1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = self.conv1(F.relu(x))  # not in place: the shortcut reads x
        h = self.conv2(F.relu(h, inplace=True))
        h = self.conv3(F.relu(h, inplace=True))
        h = F.relu(h, inplace=True)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return self.conv4(h) + self.shortcut(x)
