"""BigGAN-deep generator and discriminator (Appendix B, "BigGAN-deep"; blocks in deep_blocks.py).

Differences from BigGAN (biggan.models.generator / discriminator), all from Appendix B:
- z is not split: [shared embedding, z] is the conditioning vector of every BN, and the input
  linear takes it whole (BigGAN-PyTorch's `BigGANdeep.Generator` with --hier, which is how its
  deep launch script runs; TF-Hub's modules concatenate the same two, z first);
- two bottleneck blocks per resolution, shortcuts without convs (deep_blocks.py);
- D starts with a 3x3 conv, then the bottleneck blocks; its head is BigGAN's (projection D).

Where the paper is silent, BigGAN-PyTorch's `BigGANdeep.py` decides: the order [embedding, z] of
the concatenation, G's output stage (unconditional BN, ReLU, SN conv3x3, tanh), the module names
(so its state dicts map onto ours name for name, biggan.interop.keymap). Two options exist only
for TF-Hub's released generators (biggan.interop.pretrained): an output conv to more than 3
channels of which the first 3 are kept (`model.rgb_channels`), and BN statistics stored per
truncation value (`model.bn_truncation_points`, biggan.models.truncation_stats).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.models.arch import resolve_attention
from biggan.models.batchnorm import BatchNorm2d, BatchStatsReducer, batchnorms
from biggan.models.deep_arch import (
    BOTTOM_WIDTH,
    DEFAULT_D_ATTENTION,
    DEFAULT_DIM_Z,
    DEFAULT_G_ATTENTION,
    discriminator_input_channels,
    discriminator_stages_deep,
    generator_blocks_deep,
)
from biggan.models.deep_blocks import DeepDBlock, DeepGBlock
from biggan.models.discriminator import projection_head
from biggan.models.init import orthogonal_init_
from biggan.models.layers import ConditionalBNFactory, HeadDropout, sn_factory
from biggan.models.truncation_stats import TruncationStatistics


def deep_dim_z(cfg: ModelConfig) -> int:
    return cfg.dim_z if cfg.dim_z is not None else DEFAULT_DIM_Z[cfg.resolution]  # type: ignore[index]


class DeepGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, bn_reducer: BatchStatsReducer | None = None) -> None:
        super().__init__()
        cfg.require_data_fields()
        if cfg.arch != "deep":
            raise ValueError(f"DeepGenerator builds model.arch=deep, not {cfg.arch!r}")
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        self.shared_dim = cfg.shared_dim
        self.dim_z = deep_dim_z(cfg)
        attention = resolve_attention(cfg.g_attention, cfg.resolution, DEFAULT_G_ATTENTION)
        specs = generator_blocks_deep(cfg.resolution, cfg.ch, attention)

        sn = sn_factory(cfg, "G")  # model.g_sn: SN on or off in every layer of G
        # Plain nn.Embedding, as BigGAN's: SN on G's embedding cripples G (BigGAN-PyTorch).
        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_dim)
        cond_dim = cfg.shared_dim + self.dim_z
        make_bn = ConditionalBNFactory(cond_dim=cond_dim, shared=True, sn=sn, eps=cfg.bn_eps, reducer=bn_reducer)
        self.bottom_channels = specs[0].in_channels
        self.linear = sn.linear(cond_dim, self.bottom_channels * BOTTOM_WIDTH**2)
        self.blocks = nn.ModuleList()
        for spec in specs:  # one stage per block, as BigGAN-PyTorch's deep G nests them
            stage = nn.ModuleList([DeepGBlock(spec.in_channels, spec.out_channels, spec.resample, sn, make_bn)])
            if spec.attention:
                stage.append(sn.attention(spec.out_channels))
            self.blocks.append(stage)
        self.output_bn = BatchNorm2d(specs[-1].out_channels, eps=cfg.bn_eps, reducer=bn_reducer)
        self.output_conv = sn.conv(specs[-1].out_channels, cfg.rgb_channels)
        if cfg.bn_truncation_points:
            channels = [layer.num_features for layer in batchnorms(self)]
            self.truncation_statistics = TruncationStatistics(cfg.bn_truncation_points, channels)
        orthogonal_init_(self)

    def class_condition(self, y: Tensor) -> Tensor:
        """Class part of the conditioning: the shared embedding (lets sheets interpolate classes)."""
        return self.shared(y)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.forward_conditioned(z, self.class_condition(y))

    def forward_conditioned(self, z: Tensor, class_cond: Tensor) -> Tensor:
        if z.shape[1] != self.dim_z:
            raise ValueError(f"z has {z.shape[1]} dims, G expects dim_z={self.dim_z}")
        cond = torch.cat([class_cond, z], dim=1)  # fed whole to the linear and to every BN
        h = self.linear(cond).view(z.shape[0], self.bottom_channels, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for stage in self.blocks:
            for layer in stage:
                h = layer(h, cond)
        out = self.output_conv(F.relu(self.output_bn(h), inplace=True))
        return torch.tanh(out[:, :3])


class DeepDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.require_data_fields()
        if cfg.arch != "deep":
            raise ValueError(f"DeepDiscriminator builds model.arch=deep, not {cfg.arch!r}")
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        ch = cfg.discriminator_ch
        attention = resolve_attention(cfg.d_attention, cfg.resolution, DEFAULT_D_ATTENTION)
        stages = discriminator_stages_deep(cfg.resolution, ch, attention)
        sn = sn_factory(cfg, "D")  # model.d_sn: SN on or off in every layer of D
        self.input_conv = sn.conv(3, discriminator_input_channels(cfg.resolution, ch))
        self.blocks = nn.ModuleList()
        for specs in stages:  # one stage per resolution holding both blocks, as BigGAN-PyTorch's deep D
            stage = nn.ModuleList([DeepDBlock(s.in_channels, s.out_channels, s.resample, sn) for s in specs])
            if specs[-1].attention:
                stage.append(sn.attention(specs[-1].out_channels))
            self.blocks.append(stage)
        self.head_dropout = HeadDropout()  # keep probability set by the training step (Section 4.2)
        width = stages[-1][-1].out_channels
        self.linear = sn.linear(width, 1)
        self.embed = sn.embedding(cfg.num_classes, width)
        orthogonal_init_(self)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.input_conv(x)
        for stage in self.blocks:
            for layer in stage:
                h = layer(h)
        return projection_head(h, y, self.head_dropout, self.linear, self.embed)  # BigGAN's head
