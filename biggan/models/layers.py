"""Residual blocks of G and D (Appendix B, Figure 15) and the SN layer factory.

Block layouts follow BigGAN-PyTorch's `GBlock` / `DBlock`, which implement Figure 15 (a)
and (b): G's block is BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 with a 1x1 conv on the
upsampled shortcut; D's block is (ReLU)-conv3x3-ReLU-conv3x3-avgpool with a 1x1 conv
shortcut. D is "wide" as in BigGAN-PyTorch: the hidden width is the block's output width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.batchnorm import BatchStatsReducer, ConditionalBatchNorm2d
from biggan.models.spectral import SNConv2d, SNEmbedding, SNLinear


@dataclass(frozen=True)
class SNFactory:
    """Builds spectrally normalised layers with one set of SN settings."""

    num_svs: int  # singular values tracked per layer (Section 4.1: top 3)
    num_iterations: int  # power iterations per forward
    eps: float  # Appendix C: 1e-4

    def conv(self, cin: int, cout: int, kernel_size: int = 3) -> SNConv2d:
        return SNConv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=True,
                        num_svs=self.num_svs, num_iterations=self.num_iterations, eps=self.eps)

    def linear(self, cin: int, cout: int, bias: bool = True) -> SNLinear:
        return SNLinear(cin, cout, bias=bias, num_svs=self.num_svs,
                        num_iterations=self.num_iterations, eps=self.eps)

    def embedding(self, num: int, dim: int) -> SNEmbedding:
        return SNEmbedding(num, dim, num_svs=self.num_svs, num_iterations=self.num_iterations, eps=self.eps)


@dataclass(frozen=True)
class ConditionalBNFactory:
    """Builds G's conditional BNs: projections from the conditioning vector to gain and bias."""

    cond_dim: int  # shared_dim + z chunk (shared) or num_classes + z chunk (not shared)
    shared: bool  # shared embedding: SN linear projections; else plain per-layer embeddings
    sn: SNFactory
    eps: float  # Appendix C: BN epsilon 1e-4
    reducer: BatchStatsReducer | None

    def __call__(self, channels: int) -> ConditionalBatchNorm2d:
        if self.shared:
            # BigGAN-PyTorch: bias-free SNLinear from [shared embedding, z chunk].
            gain, bias = (self.sn.linear(self.cond_dim, channels, bias=False) for _ in range(2))
        else:
            # BigGAN-PyTorch's non-shared baseline: an nn.Embedding (no SN) per BN for gain
            # and for bias; applied to a one-hot it is this bias-free linear map.
            gain, bias = (nn.Linear(self.cond_dim, channels, bias=False) for _ in range(2))
        return ConditionalBatchNorm2d(channels, self.cond_dim, gain, bias, eps=self.eps, reducer=self.reducer)


class GBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        sn: SNFactory,
        make_bn: ConditionalBNFactory,
    ) -> None:
        super().__init__()
        self.bn1 = make_bn(in_channels)
        self.conv1 = sn.conv(in_channels, out_channels)
        self.bn2 = make_bn(out_channels)
        self.conv2 = sn.conv(out_channels, out_channels)
        self.conv_sc = sn.conv(in_channels, out_channels, kernel_size=1)  # upsampling: always learnable

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # In-place ReLUs where the input is a fresh BN/conv output no backward reads: same
        # values, one activation-sized buffer fewer each.
        h = F.relu(self.bn1(x, cond), inplace=True)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # Table 4: nearest-neighbour upsampling
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond), inplace=True))
        # BigGAN-PyTorch upsamples x and then applies the 1x1 shortcut conv; a 1x1 conv (with
        # bias) commutes with nearest-neighbour upsampling, so convolving first is the same map
        # at a quarter of the shortcut's FLOPs, and the upsample moves out_channels (G halves
        # the width going up) instead of in_channels.
        return h + F.interpolate(self.conv_sc(x), scale_factor=2, mode="nearest")


class DBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        downsample: bool,  # 2x2 average pooling at the end
        preactivation: bool,  # False only for the first block (raw RGB input)
        sn: SNFactory,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        hidden = out_channels  # "wide" D (BigGAN-PyTorch D_wide=True, as in SA-GAN)
        self.conv1 = sn.conv(in_channels, hidden)
        self.conv2 = sn.conv(hidden, out_channels)
        self.learnable_sc = in_channels != out_channels or downsample
        self.conv_sc = sn.conv(in_channels, out_channels, kernel_size=1) if self.learnable_sc else None

    def shortcut(self, x: Tensor) -> Tensor:
        if self.conv_sc is None:
            return x
        # BigGAN-PyTorch: conv before pooling for preactivated blocks, after for the first.
        if self.preactivation:
            x = self.conv_sc(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        x = F.avg_pool2d(x, 2) if self.downsample else x
        return self.conv_sc(x)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = F.relu(x) if self.preactivation else x  # not in place: the shortcut reads x
        h = self.conv2(F.relu(self.conv1(h), inplace=True))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)
