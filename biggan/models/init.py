"""Orthogonal initialisation of G and D (Section 3: "Orthogonal Initialization", Saxe et al.).

As BigGAN-PyTorch's `init_weights` with `init='ortho'`: every conv, linear and embedding
weight is orthogonal; biases keep torch's default. Embeddings are included, as there.
"""

from __future__ import annotations

from torch import nn
from torch.nn import init


def orthogonal_init_(module: nn.Module) -> None:
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear, nn.Embedding)) and not sub.weight.is_meta:
            # (meta tensors: models built only to count parameters, see biggan.models.params)
            init.orthogonal_(sub.weight)
