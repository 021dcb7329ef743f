"""Residual blocks of G and D (Appendix B, Figure 15) and the SN layer factory.

Block layouts follow BigGAN-PyTorch's `GBlock` / `DBlock`, which implement Figure 15 (a)
and (b): G's block is BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 with a 1x1 conv on the
upsampled shortcut; D's block is (ReLU)-conv3x3-ReLU-conv3x3-avgpool with a 1x1 conv
shortcut. D is "wide" as in BigGAN-PyTorch: the hidden width is the block's output width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.models.attention import SelfAttention
from biggan.models.batchnorm import BatchStatsReducer, ConditionalBatchNorm2d
from biggan.models.spectral import SNConv2d, SNEmbedding, SNLinear


@dataclass(frozen=True)
class SNFactory:
    """Builds spectrally normalised layers with one set of SN settings."""

    num_svs: int  # singular values tracked per layer (Section 4.1: top 3)
    num_iterations: int  # power iterations per forward
    eps: float  # Appendix C: 1e-4
    enabled: bool = True  # divide by sigma_0 (Section 4 studies G and D with and without SN)

    def conv(self, cin: int, cout: int, kernel_size: int = 3) -> SNConv2d:
        return SNConv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=True,
                        num_svs=self.num_svs, num_iterations=self.num_iterations, eps=self.eps,
                        enabled=self.enabled)

    def linear(self, cin: int, cout: int, bias: bool = True) -> SNLinear:
        return SNLinear(cin, cout, bias=bias, num_svs=self.num_svs,
                        num_iterations=self.num_iterations, eps=self.eps, enabled=self.enabled)

    def embedding(self, num: int, dim: int) -> SNEmbedding:
        return SNEmbedding(num, dim, num_svs=self.num_svs, num_iterations=self.num_iterations, eps=self.eps,
                           enabled=self.enabled)

    def attention(self, channels: int) -> SelfAttention:
        """A non-local block whose four 1x1 convs follow these SN settings."""
        return SelfAttention(channels, self.num_svs, self.num_iterations, self.eps, sn_enabled=self.enabled)


def sn_factory(cfg: ModelConfig, network: Literal["G", "D"]) -> SNFactory:
    """The SN settings of G's or D's layers (`model.g_sn` / `model.d_sn` switch SN per network).
    Every network family builds its SN layers through this, so both switches reach all of them
    (biggan.train.state checks that they did)."""
    enabled = cfg.g_sn if network == "G" else cfg.d_sn
    return SNFactory(cfg.sn_tracked_svs, cfg.sn_power_iterations, cfg.sn_eps, enabled)


class HeadDropout(nn.Module):
    """Dropout on the pooled features in front of D's output layer (Section 4.2 and the paper's
    hyper-parameter sweeps: "DropOut in the final layer of D", keep probability 0.5 to 0.95).

    The keep probability is a training setting (`train.d_dropout_keep`), not architecture: the
    module holds no weights, so the step sets it (`set_head_dropout`) and a run may change it on
    resume or in a rollback remedy. Masks come from `generator` (the step passes its latent RNG,
    which every checkpoint segment reseeds), so a resumed run draws the masks of an uninterrupted
    one; the global RNG is never touched. Off in evaluation, as dropout always is."""

    def __init__(self) -> None:
        super().__init__()
        self.keep = 1.0  # keep probability; 1 = off
        self.generator: torch.Generator | None = None  # draws the masks; None: the global RNG

    def forward(self, h: Tensor) -> Tensor:
        if not self.training or self.keep >= 1.0:
            return h
        mask = torch.empty_like(h).bernoulli_(self.keep, generator=self.generator)
        return h * mask / self.keep

    def extra_repr(self) -> str:
        return f"keep={self.keep}"


def set_head_dropout(D: nn.Module, keep: float, generator: torch.Generator | None) -> None:
    """Set the keep probability (and mask generator) of D's head dropout; a D without one can
    only take keep = 1."""
    found = [m for m in D.modules() if isinstance(m, HeadDropout)]
    if not found and keep < 1.0:
        raise ValueError(f"train.d_dropout_keep={keep} but this {type(D).__name__} has no dropout before its head")
    for module in found:
        module.keep, module.generator = float(keep), generator


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
