"""BigGAN discriminator (Section 3, Appendix B Tables 4b-6b, Figure 15b).

A projection discriminator (Miyato & Koyama 2018): residual blocks, ReLU, global SUM
pooling, then a linear output plus the inner product of a class embedding with the pooled
features. Every conv, linear and the embedding are spectrally normalised (unless `model.d_sn`
is off, Section 4.2). Dropout on the pooled features before the head is off unless the training
step sets a keep probability (`train.d_dropout_keep`, Section 4.2; biggan.models.layers.HeadDropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.models.arch import DEFAULT_D_ATTENTION, discriminator_blocks, resolve_attention
from biggan.models.init import orthogonal_init_
from biggan.models.layers import DBlock, HeadDropout, sn_factory
from biggan.models.precision import at_least_fp32


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.require_data_fields()
        if cfg.arch != "biggan":  # BigGAN-deep is biggan.models.deep; biggan.models.discriminator_class picks
            raise ValueError(f"this is BigGAN's discriminator, not model.arch={cfg.arch}")
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        ch = cfg.discriminator_ch
        attention = resolve_attention(cfg.d_attention, cfg.resolution, DEFAULT_D_ATTENTION)
        specs = discriminator_blocks(cfg.resolution, ch, attention)
        sn = sn_factory(cfg, "D")  # model.d_sn: SN on or off in every layer of D
        self.blocks = nn.ModuleList()
        for index, spec in enumerate(specs):
            stage = nn.ModuleList([
                DBlock(spec.in_channels, spec.out_channels, downsample=spec.resample,
                       preactivation=index > 0, sn=sn)
            ])
            if spec.attention:
                stage.append(sn.attention(spec.out_channels))
            self.blocks.append(stage)
        self.head_dropout = HeadDropout()  # keep probability set by the training step
        self.linear = sn.linear(specs[-1].out_channels, 1)
        self.embed = sn.embedding(cfg.num_classes, specs[-1].out_channels)
        orthogonal_init_(self)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for stage in self.blocks:
            for layer in stage:
                h = layer(h)
        return projection_head(h, y, self.head_dropout, self.linear, self.embed)


def projection_head(h: Tensor, y: Tensor, dropout: HeadDropout, linear: nn.Module, embed: nn.Module) -> Tensor:
    """D's output from its last feature map, BigGAN's and BigGAN-deep's alike (projection D): ReLU, global
    sum pooling, head dropout, the linear output plus the projection term <embed(y), h>."""
    # In fp32 even under bf16 autocast: the logits go straight into the hinge loss, and a sum
    # over up to 16 x 16 positions would round at 3 digits in bf16.
    with torch.autocast(device_type=h.device.type, enabled=False):
        h = torch.sum(at_least_fp32(F.relu(h, inplace=True)), dim=(2, 3))  # global sum pooling (Table 4b)
        h = dropout(h)  # identity unless train.d_dropout_keep < 1 (training only)
        out = linear(h).squeeze(1)
        return out + torch.sum(embed(y) * h, dim=1)  # projection term
