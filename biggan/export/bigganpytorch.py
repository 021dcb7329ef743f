"""A run's nets as BigGAN-PyTorch's own files (`biggan export` writes them into OUT/bigganpytorch/).

The inverse of `biggan.interop.import_bigganpytorch`: their `utils.load_weights` (strict) and
`sample.py --config_from_name` read the folder; importing it back gives identical tensors
(BN `num_batches_tracked`, which their layout lacks, comes back as 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.interop.writer import to_bigganpytorch, write_bigganpytorch


def export_bigganpytorch(
    G: nn.Module | Mapping[str, Tensor],  # a module or its state dict (our names)
    D: nn.Module | Mapping[str, Tensor],
    G_ema: nn.Module | Mapping[str, Tensor] | None,
    cfg: ModelConfig,
    out_dir: Path | str,
    iteration: int = 0,  # their `itr` in state_dict.pth
    opt_G: dict[str, Any] | None = None,  # our Adam state dicts; written as G_optim.pth / D_optim.pth
    opt_D: dict[str, Any] | None = None,
) -> list[str]:
    """Write G.pth, D.pth, G_ema.pth, state_dict.pth (+ optimizers) into `out_dir`.

    Returns notes on what their code will not reproduce exactly (e.g. their output BN's fixed
    eps) or cannot build (e.g. D attention at 32 px); say them to the user.
    """
    notes: list[str] = []
    files = to_bigganpytorch(_sd(G), _sd(D), None if G_ema is None else _sd(G_ema), cfg,
                             iteration=iteration, opt_G=opt_G, opt_D=opt_D, notes=notes)
    write_bigganpytorch(files, out_dir)
    return notes


def _sd(net: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    return net.state_dict() if isinstance(net, nn.Module) else dict(net)
