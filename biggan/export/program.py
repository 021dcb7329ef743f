"""A generator program that runs with torch alone: `torch.export` to `generator.pt2`.

The program maps (z [B, dim_z] float32, y [B] int64, truncation: 0-d float32 tensor) to
images [B, 3, R, R] in [-1, 1]: truncation by the inverse-CDF map (`truncation.py`), then our
G in eval mode (BN normalises with the baked running statistics), without gradients. The batch
size is dynamic.

Spectral norm is frozen first: in eval mode our SN layers never update their u vectors, so
W / sigma(W, u) is the same tensor on every call; it is computed once and stored as the layer's
weight. Besides saving a power iteration per layer per call, this is what lets `torch.export`
serialise the graph at all: the power iteration runs under `torch.autocast(enabled=False)`
(biggan.models.spectral), which export records as a `wrap_with_autocast` node that
`torch.export.save` cannot write (torch 2.14: "Node.meta wrap_with_autocast is missing val").

TorchScript (`generator.ts`, `torch.jit.trace`) is the fallback when `torch.export` fails on
some other torch version, and can be asked for; the reason is recorded in generator.json.
"""

from __future__ import annotations

import copy
import types
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from biggan.export.priors import from_normal
from biggan.export.truncation import truncate_by_cdf
from biggan.models.spectral import SpectralNorm

PT2, TORCHSCRIPT = "generator.pt2", "generator.ts"


class TruncatedGenerator(nn.Module):
    """What the program holds: truncation map (onto the G's latent prior, Appendix E), then G."""

    def __init__(self, G: nn.Module, prior: str = "normal") -> None:
        super().__init__()
        self.G = G
        self.prior = prior  # ModelConfig.latent: N(0, I) draws are mapped onto it (biggan.export.priors)

    def forward(self, z: Tensor, y: Tensor, truncation: Tensor) -> Tensor:
        if self.prior == "normal":
            return self.G(truncate_by_cdf(z, truncation), y)
        return self.G(from_normal(z, self.prior, truncation), y)


def _weight_as_is(self: nn.Module) -> Tensor:
    return self.weight


@torch.no_grad()
def freeze_spectral_norm(G: nn.Module) -> nn.Module:
    """A copy of G (eval mode) whose SN layers hold W / sigma and skip the power iteration."""
    frozen = copy.deepcopy(G).eval()
    for module in frozen.modules():
        if isinstance(module, SpectralNorm):
            module.weight.copy_(module.normalized_weight())  # eval: u is read, never written
            module.normalized_weight = types.MethodType(_weight_as_is, module)
            for i in range(module.sn_num_svs):  # unused now; keep the program lean
                delattr(module, f"u{i}")
                delattr(module, f"sv{i}")
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


def example_inputs(G: nn.Module, batch: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    return (torch.zeros(batch, G.dim_z), torch.zeros(batch, dtype=torch.long), torch.tensor(1.0))


def export_program(G_ema: nn.Module, out_dir: Path, fmt: str = "pt2", prior: str = "normal") -> dict[str, str]:
    """Write the program into `out_dir`; returns {"file", "format", "why"} for generator.json.

    `fmt`: "pt2" (torch.export, TorchScript if it fails) or "ts" (TorchScript only); `prior`: the
    model's latent prior (ModelConfig.latent), which the program maps its N(0, I) input onto.
    """
    wrapper = TruncatedGenerator(freeze_spectral_norm(G_ema).cpu(), prior).eval()
    inputs = example_inputs(G_ema)
    why = "torch.export.export + torch.export.save (torch.export.load reads it)"
    if fmt == "pt2":
        try:
            batch = torch.export.Dim("batch", min=1, max=65536)
            with torch.no_grad():
                program = torch.export.export(wrapper, inputs, dynamic_shapes=({0: batch}, {0: batch}, None))
            torch.export.save(program, out_dir / PT2)
            return {"file": PT2, "format": "torch.export", "why": why}
        except Exception as error:  # noqa: BLE001 - any torch.export failure: fall back, and say why
            why = f"torch.export failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    elif fmt != "ts":
        raise ValueError(f"program format {fmt!r}: use 'pt2' or 'ts'")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=FutureWarning)  # torch 2.14's jit notice
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks in G's forward
        traced = torch.jit.trace(wrapper, inputs, check_trace=False)
        torch.jit.save(traced, str(out_dir / TORCHSCRIPT))
    why = why + "; wrote TorchScript instead" if fmt == "pt2" else "TorchScript asked for"
    return {"file": TORCHSCRIPT, "format": "torchscript", "why": why + " (torch.jit.load reads it)"}
