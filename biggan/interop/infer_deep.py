"""Our ModelConfig for BigGAN-PyTorch's BigGAN-deep weights (`--model BigGANdeep`), from shapes.

As for BigGAN (infer.py): the tensors decide the architecture, their stored config supplies the
epsilons and power iterations and is checked where both speak. Their deep G nests one block per
`blocks.{i}` (a non-local block at `blocks.{i}.1`), two blocks per resolution; their deep D nests
one resolution per `blocks.{s}` with both of its blocks (`blocks.{s}.0`, `.1`; a non-local block
at `.2`) after an `input_conv`.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from biggan.config import ModelConfig
from biggan.interop import their_config as tc
from biggan.interop.errors import UnsupportedCheckpointError
from biggan.interop.infer import _check_against_config, _multiple, _shape, attention_at, numerics
from biggan.models.deep_arch import (
    DEPTH,
    discriminator_input_channels,
    discriminator_stages_deep,
    generator_blocks_deep,
)

D_STAGES_TO_RESOLUTION = {3: 32, 4: 64, 5: 128, 6: 256, 7: 512}


def looks_deep(G_sd: dict[str, Tensor], D_sd: dict[str, Tensor], their_config: dict[str, Any] | None) -> bool:
    """BigGAN-deep weights: their config says so, or the tensors have its 4-conv blocks or input conv."""
    keys = list(G_sd) + list(D_sd)
    return tc.is_deep(their_config) or "input_conv.weight" in D_sd or any(
        re.search(r"\.(conv3|conv4|bn3|bn4)\.", k) for k in keys)


def infer_deep_config(
    G_sd: dict[str, Tensor],  # their G state dict (their names, default BN layout)
    D_sd: dict[str, Tensor],
    their_config: dict[str, Any] | None,
    notes: list[str],
) -> ModelConfig:
    notes.extend(tc.check_their_config(their_config))
    for net, sd, key in (("G", G_sd, "blocks.0.0.conv3.weight"), ("D", D_sd, "input_conv.weight")):
        if key not in sd:
            raise UnsupportedCheckpointError(f"{net} has no {key!r}: not BigGAN-PyTorch's BigGANdeep layout")
    stages = _count(D_sd, r"^blocks\.(\d+)\.0\.conv1\.weight$")
    if stages not in D_STAGES_TO_RESOLUTION:
        raise UnsupportedCheckpointError(f"D has {stages} stages; BigGAN-deep has 3 (32 px) to 7 (512 px)")
    resolution = D_STAGES_TO_RESOLUTION[stages]
    g_specs, d_stages = generator_blocks_deep(resolution, 1, None), discriminator_stages_deep(resolution, 1, None)
    g_blocks = _count(G_sd, r"^blocks\.(\d+)\.0\.conv1\.weight$")
    d_depth = len({k.split(".")[2] for k in D_sd if re.match(r"^blocks\.0\.\d+\.conv1\.weight$", k)})
    if g_blocks != len(g_specs) or d_depth != DEPTH:
        raise UnsupportedCheckpointError(
            f"G has {g_blocks} blocks and D {d_depth} per resolution; BigGAN-deep at {resolution} px has "
            f"{len(g_specs)} and {DEPTH} (two per resolution, Appendix B)")
    ch = _multiple(_shape(G_sd, "blocks.0.0.conv1.weight", "G")[1], g_specs[0].in_channels, "G ch")
    d_ch = _multiple(_shape(D_sd, "input_conv.weight", "D")[0], discriminator_input_channels(resolution, 1), "D ch")

    if "shared.weight" not in G_sd:
        raise UnsupportedCheckpointError("G has no shared embedding: BigGAN-PyTorch's BigGANdeep runs only with it")
    g_classes, shared_dim = _shape(G_sd, "shared.weight", "G")
    num_classes = _shape(D_sd, "embed.weight", "D")[0]
    if g_classes != num_classes:
        raise UnsupportedCheckpointError(f"G has {g_classes} classes and D {num_classes}")
    cond = _shape(G_sd, "linear.weight", "G")[1]  # [embedding, z]
    if _shape(G_sd, "blocks.0.0.bn1.gain.weight", "G")[1] != cond:
        raise UnsupportedCheckpointError("G's linear and its BNs take conditioning vectors of different sizes")
    rgb = _shape(G_sd, "output_layer.2.weight", "G")[0]
    if rgb != 3:
        raise UnsupportedCheckpointError(f"G's output conv makes {rgb} channels, BigGAN-PyTorch's makes 3")
    cfg = ModelConfig(
        arch="deep",
        resolution=resolution,
        num_classes=num_classes,
        ch=ch,
        d_ch=None if d_ch == ch else d_ch,
        dim_z=cond - shared_dim,
        shared_dim=shared_dim,
        g_attention=attention_at(G_sd, [s.resolution for s in g_specs], "G"),
        d_attention=attention_at(D_sd, [s[-1].resolution for s in d_stages], "D", r"^blocks\.(\d+)\.2\."),
        **numerics(G_sd, D_sd, their_config),
    )
    _check_against_config(cfg, their_config)
    return cfg


def _count(sd: dict[str, Tensor], pattern: str) -> int:
    return len({re.match(pattern, k).group(1) for k in sd if re.match(pattern, k)})  # type: ignore[union-attr]
