"""BigGAN generator (Section 3, Appendix B Tables 4a-6a, Figure 15a).

z (split into one chunk per block plus one for the input linear when `hier`) and a class
label go in; a [B, 3, R, R] image in [-1, 1] comes out. With `shared`, one 128-d class
embedding is linearly projected to every BN's gains and biases (Section 3); without it each
BN has its own class embedding (Table 1 baseline). With `hier`, block i's BN is conditioned
on [shared embedding, z chunk i] (Section 3 "hierarchical latent spaces"); without it z only
enters through the first linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.models.arch import (
    BOTTOM_WIDTH,
    DEFAULT_G_ATTENTION,
    generator_blocks,
    resolve_attention,
    resolve_dim_z,
)
from biggan.models.batchnorm import BatchNorm2d, BatchStatsReducer
from biggan.models.init import orthogonal_init_
from biggan.models.layers import ConditionalBNFactory, GBlock, sn_factory


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, bn_reducer: BatchStatsReducer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        cfg.require_data_fields()
        if cfg.arch != "biggan":  # BigGAN-deep is biggan.models.deep; biggan.models.generator_class picks
            raise ValueError(f"this is BigGAN's generator, not model.arch={cfg.arch}")
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        self.hier = cfg.hier
        self.shared_dim = cfg.shared_dim
        attention = resolve_attention(cfg.g_attention, cfg.resolution, DEFAULT_G_ATTENTION)
        specs = generator_blocks(cfg.resolution, cfg.ch, attention)

        requested_z = resolve_dim_z(cfg.dim_z, cfg.resolution)
        if self.hier:
            # One chunk for the input linear plus one per block; BigGAN-PyTorch rounds dim_z
            # down to a multiple of the number of chunks (120 / 6 = 20 at 128 px).
            self.num_chunks = len(specs) + 1
            self.z_chunk = requested_z // self.num_chunks
            if self.z_chunk < 1:
                raise ValueError(f"dim_z {requested_z} is too small to split into {self.num_chunks} chunks")
            self.dim_z = self.z_chunk * self.num_chunks
        else:
            self.num_chunks, self.z_chunk, self.dim_z = 1, 0, requested_z

        sn = sn_factory(cfg, "G")  # model.g_sn: SN on or off in every layer of G
        # Shared embedding is a plain nn.Embedding: BigGAN-PyTorch notes SN on it cripples G.
        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_dim) if cfg.shared else None
        class_dim = cfg.shared_dim if cfg.shared else cfg.num_classes
        make_bn = ConditionalBNFactory(
            cond_dim=class_dim + self.z_chunk, shared=cfg.shared, sn=sn, eps=cfg.bn_eps, reducer=bn_reducer
        )
        first_in = self.z_chunk if self.hier else self.dim_z
        self.bottom_channels = specs[0].in_channels
        self.linear = sn.linear(first_in, self.bottom_channels * BOTTOM_WIDTH**2)
        self.blocks = nn.ModuleList()
        for spec in specs:
            stage = nn.ModuleList([GBlock(spec.in_channels, spec.out_channels, sn, make_bn)])
            if spec.attention:
                stage.append(sn.attention(spec.out_channels))
            self.blocks.append(stage)
        # Output: BN (unconditional in BigGAN-PyTorch), ReLU, SN conv3x3 to RGB, tanh (Table 4a).
        self.output_bn = BatchNorm2d(specs[-1].out_channels, eps=cfg.bn_eps, reducer=bn_reducer)
        self.output_conv = sn.conv(specs[-1].out_channels, 3)
        orthogonal_init_(self)

    def class_condition(self, y: Tensor) -> Tensor:
        """Class part of the BN conditioning: shared embedding, or one-hot without it."""
        if self.shared is not None:
            return self.shared(y)
        return F.one_hot(y, self.num_classes).to(self.linear.weight.dtype)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.forward_conditioned(z, self.class_condition(y))

    def forward_conditioned(self, z: Tensor, class_cond: Tensor) -> Tensor:
        """Forward from a class conditioning vector (lets sheets interpolate between classes)."""
        if z.shape[1] != self.dim_z:
            raise ValueError(f"z has {z.shape[1]} dims, G expects dim_z={self.dim_z}")
        if self.hier:
            chunks = torch.split(z, self.z_chunk, dim=1)
            z0, conds = chunks[0], [torch.cat([class_cond, c], dim=1) for c in chunks[1:]]
        else:
            z0, conds = z, [class_cond] * len(self.blocks)
        h = self.linear(z0).view(z.shape[0], self.bottom_channels, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for stage, cond in zip(self.blocks, conds):
            for layer in stage:
                h = layer(h, cond)
        return torch.tanh(self.output_conv(F.relu(self.output_bn(h), inplace=True)))
