"""Initialisation of G and D from an explicit `torch.Generator` (Section 3: "Orthogonal
Initialization", Saxe et al.).

As BigGAN-PyTorch's `init_weights` with `init='ortho'`: every conv, linear and embedding weight
is orthogonal; biases keep torch's default; embeddings are included, as there.

Why a generator and not `torch.manual_seed`: the global RNG is one per process, and the
evaluation nodes build networks in threads of one process (the untrained-G baseline of the demo
was drawn while another node was building its own). `build(cls, cfg, generator)` constructs the
network on the meta device (no random draw at all) and `initialize_` fills every parameter and
buffer from `generator` alone. It draws exactly what construction on the CPU under
`torch.manual_seed(s)` draws, in the same order (each layer's torch default, its spectral-norm
vectors, then the orthogonal pass), so `build(..., torch.Generator().manual_seed(s))` gives the
same tensors bit for bit as the seeded construction it replaces (tests/unit/test_models_init.py).
A parameter or buffer of a layer type `initialize_` does not know is an error, never left as the
garbage `to_empty` leaves.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import nn
from torch.nn import init

from biggan.models.attention import SelfAttention
from biggan.models.batchnorm import BatchNorm2d, ReducedBatchNorm
from biggan.models.spectral import SpectralNorm
from biggan.models.truncation_stats import TruncationStatistics

Net = TypeVar("Net", bound=nn.Module)


def orthogonal_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Orthogonal weights for every conv, linear and embedding of `module` (meta tensors skipped:
    those are networks built only to be counted, or to be initialised by `initialize_`)."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear, nn.Embedding)) and not sub.weight.is_meta:
            init.orthogonal_(sub.weight, generator=generator)


def _torch_default_(layer: nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """torch's own `reset_parameters` of a linear, conv or embedding layer, drawn from `generator`."""
    if isinstance(layer, nn.Embedding):
        init.normal_(layer.weight, generator=generator)
        return [layer.weight]
    # nn.Linear and nn.Conv2d: kaiming-uniform weight with a = sqrt(5), uniform bias of 1/sqrt(fan_in).
    if layer.weight.is_contiguous():
        init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    else:  # a channels_last conv weight: torch draws into a contiguous buffer first
        buffer = torch.empty_like(layer.weight, memory_format=torch.contiguous_format)
        init.kaiming_uniform_(buffer, a=math.sqrt(5), generator=generator)
        layer.weight.copy_(buffer)
    done = [layer.weight]
    if layer.bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(layer.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(layer.bias, -bound, bound, generator=generator)
        done.append(layer.bias)
    return done


def _own_tensors(module: nn.Module) -> list[torch.Tensor]:
    return list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))


@torch.no_grad()
def initialize_(module: nn.Module, generator: torch.Generator, orthogonal: bool = True) -> nn.Module:
    """Every parameter and buffer of `module` from `generator` (see the module docstring); with
    `orthogonal=False` torch's defaults alone (a plain convnet such as the dataset classifier)."""
    done: set[int] = set()
    for sub in module.modules():  # registration order = construction order in G and D
        own = _own_tensors(sub)
        if not own:
            continue
        filled: list[torch.Tensor] = []
        if isinstance(sub, (nn.Linear, nn.Conv2d, nn.Embedding)):
            filled += _torch_default_(sub, generator)
        if isinstance(sub, SpectralNorm):
            for u in sub.sn_us:
                u.copy_(torch.randn(u.shape, generator=generator, dtype=u.dtype))
            for sv in sub.sn_svs:
                sv.fill_(1.0)
            filled += sub.sn_us + sub.sn_svs
        if isinstance(sub, ReducedBatchNorm):
            sub.reset_running_stats()
            filled += [sub.running_mean, sub.running_var, sub.num_batches_tracked]
        if isinstance(sub, BatchNorm2d):
            sub.gain.fill_(1.0)
            sub.bias.zero_()
            filled += [sub.gain, sub.bias]
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.reset_parameters()  # torch's BN (the dataset classifier): weight 1, bias 0, statistics reset
            filled += own
        if isinstance(sub, SelfAttention):
            sub.gamma.zero_()  # the block starts as the identity (SA-GAN)
            filled.append(sub.gamma)
        if isinstance(sub, TruncationStatistics):
            sub.reset_parameters()  # BigGAN-deep's stored per-truncation BN statistics: untrained BN's
            filled += [sub.means, sub.vars]
        done |= {id(t) for t in filled}
        missing = [t for t in own if id(t) not in done]
        if missing:
            raise TypeError(f"initialize_ does not know how to initialise the tensors of {type(sub).__name__}")
    if orthogonal:
        orthogonal_init_(module, generator)
    return module


def build(cls: type[Net], *args, generator: torch.Generator, orthogonal: bool = True, **kwargs) -> Net:
    """`cls(*args, **kwargs)` built on the meta device, then given CPU tensors initialised from `generator`."""
    with torch.device("meta"):
        net = cls(*args, **kwargs)
    return initialize_(net.to_empty(device="cpu"), generator, orthogonal)


def empty(cls: type[Net], *args, **kwargs) -> Net:
    """`cls(*args, **kwargs)` with uninitialised CPU tensors, for a state dict to be loaded into (no draw)."""
    with torch.device("meta"):
        net = cls(*args, **kwargs)
    return net.to_empty(device="cpu")
