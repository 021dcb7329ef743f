"""BigGAN discriminator (Section 3, Appendix B Tables 4b-6b, Figure 15b).

A projection discriminator (Miyato & Koyama 2018): residual blocks, ReLU, global SUM
pooling, then a linear output plus the inner product of a class embedding with the pooled
features. Every conv, linear and the embedding are spectrally normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.models.arch import DEFAULT_D_ATTENTION, discriminator_blocks, resolve_attention
from biggan.models.attention import SelfAttention
from biggan.models.init import orthogonal_init_
from biggan.models.layers import DBlock, SNFactory
from biggan.models.precision import at_least_fp32


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.require_data_fields()
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        ch = cfg.discriminator_ch
        attention = resolve_attention(cfg.d_attention, cfg.resolution, DEFAULT_D_ATTENTION)
        specs = discriminator_blocks(cfg.resolution, ch, attention)
        sn = SNFactory(cfg.sn_tracked_svs, cfg.sn_power_iterations, cfg.sn_eps)
        self.blocks = nn.ModuleList()
        for index, spec in enumerate(specs):
            stage = nn.ModuleList([
                DBlock(spec.in_channels, spec.out_channels, downsample=spec.resample,
                       preactivation=index > 0, sn=sn)
            ])
            if spec.attention:
                stage.append(SelfAttention(spec.out_channels, sn.num_svs, sn.num_iterations, sn.eps))
            self.blocks.append(stage)
        self.linear = sn.linear(specs[-1].out_channels, 1)
        self.embed = sn.embedding(cfg.num_classes, specs[-1].out_channels)
        orthogonal_init_(self)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for stage in self.blocks:
            for layer in stage:
                h = layer(h)
        # The output head in fp32 even under bf16 autocast: its logits go straight into the
        # hinge loss, and a sum over up to 16 x 16 positions would round at 3 digits in bf16.
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = torch.sum(at_least_fp32(F.relu(h, inplace=True)), dim=(2, 3))  # global sum pooling (Table 4b)
            out = self.linear(h).squeeze(1)
            return out + torch.sum(self.embed(y) * h, dim=1)  # projection term
