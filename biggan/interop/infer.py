"""Our ModelConfig for BigGAN-PyTorch weights: from tensor shapes, checked against their config.

The shapes decide the architecture (a config can be wrong about the file next to it, the
tensors cannot); their stored config supplies what shapes cannot show (BN and SN epsilons,
power iterations) and is checked against the shapes where both speak.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from biggan.config import ModelConfig
from biggan.interop import their_config as tc
from biggan.interop.errors import UnsupportedCheckpointError
from biggan.models.arch import discriminator_blocks, generator_blocks

G_BLOCKS_TO_RESOLUTION = {3: 32, 4: 64, 5: 128, 6: 256, 7: 512}
D_BLOCKS_TO_RESOLUTION = {4: 32, 5: 64, 6: 128, 7: 256, 8: 512}


def infer_model_config(
    G_sd: dict[str, Tensor],  # their G state dict (their names)
    D_sd: dict[str, Tensor],  # their D state dict
    their_config: dict[str, Any] | None = None,  # state_dict.pth's config, if any
    notes: list[str] | None = None,  # receives what the caller should tell the user
) -> ModelConfig:
    """The ModelConfig whose G and D have exactly these tensors (see module docstring)."""
    notes = notes if notes is not None else []
    from biggan.interop.infer_deep import infer_deep_config, looks_deep  # local: infer_deep imports this module

    if looks_deep(G_sd, D_sd, their_config):
        return infer_deep_config(G_sd, D_sd, their_config, notes)
    notes.extend(tc.check_their_config(their_config))
    resolution = _resolution(G_sd, D_sd)
    g_unit = generator_blocks(resolution, 1, None)  # channel multipliers (ch = 1)
    d_unit = discriminator_blocks(resolution, 1, None)
    ch = _multiple(_shape(G_sd, "blocks.0.0.conv1.weight", "G")[1], g_unit[0].in_channels, "G ch")
    d_ch = _multiple(_shape(D_sd, "blocks.0.0.conv1.weight", "D")[0], d_unit[0].out_channels, "D ch")

    num_classes = _shape(D_sd, "embed.weight", "D")[0]
    shared = "shared.weight" in G_sd
    linear_in = _shape(G_sd, "linear.weight", "G")[1]
    cond = _shape(G_sd, "blocks.0.0.bn1.gain.weight", "G")
    if shared:
        g_classes, shared_dim = _shape(G_sd, "shared.weight", "G")
        z_chunk = cond[1] - shared_dim  # [C, shared_dim + z chunk]
    else:  # their per-BN nn.Embedding: [classes, C]; hier needs shared in their code
        g_classes, shared_dim, z_chunk = cond[0], ModelConfig().shared_dim, 0
    if g_classes != num_classes:
        raise UnsupportedCheckpointError(f"G has {g_classes} classes and D {num_classes}")
    hier = z_chunk > 0
    if hier and z_chunk != linear_in:
        raise UnsupportedCheckpointError(f"G's z chunks differ: linear takes {linear_in}, BN {z_chunk}")
    dim_z = linear_in * (len(g_unit) + 1) if hier else linear_in

    cfg = ModelConfig(
        resolution=resolution,
        num_classes=num_classes,
        ch=ch,
        d_ch=None if d_ch == ch else d_ch,
        dim_z=dim_z,
        shared_dim=shared_dim,
        shared=shared,
        hier=hier,
        g_attention=attention_at(G_sd, [s.resolution for s in g_unit], "G"),
        d_attention=attention_at(D_sd, [s.resolution for s in d_unit], "D"),
        **numerics(G_sd, D_sd, their_config),
    )
    _check_against_config(cfg, their_config)
    return cfg


def _block_count(sd: dict[str, Tensor]) -> int:
    return len({int(k.split(".")[1]) for k in sd if re.match(r"^blocks\.\d+\.", k)})


def _resolution(G_sd: dict[str, Tensor], D_sd: dict[str, Tensor]) -> int:
    g, d = _block_count(G_sd), _block_count(D_sd)
    if g not in G_BLOCKS_TO_RESOLUTION:
        raise UnsupportedCheckpointError(f"G has {g} blocks; BigGAN has 3 (32 px) to 7 (512 px)")
    resolution = G_BLOCKS_TO_RESOLUTION[g]
    if D_BLOCKS_TO_RESOLUTION.get(d) != resolution:
        raise UnsupportedCheckpointError(f"G has {g} blocks ({resolution} px) but D has {d}")
    return resolution


def _shape(sd: dict[str, Tensor], key: str, net: str) -> tuple[int, ...]:
    if key not in sd:
        raise UnsupportedCheckpointError(f"{net} has no {key!r}: not BigGAN-PyTorch's BigGAN layout")
    return tuple(sd[key].shape)


def _multiple(width: int, unit: int, what: str) -> int:
    if width % unit:
        raise UnsupportedCheckpointError(f"{what}: width {width} is not a multiple of {unit}")
    return width // unit


def _count_svs(sd: dict[str, Tensor]) -> int:
    return sum(1 for k in sd if re.match(r"^linear\.u\d+$", k))


def numerics(G_sd: dict[str, Tensor], D_sd: dict[str, Tensor], their_config: dict[str, Any] | None) -> dict[str, Any]:
    """The ModelConfig fields shapes cannot show, BigGAN's and BigGAN-deep's alike: epsilons and power
    iterations from their config, the number of tracked singular values from the SN buffers."""
    svs = {net: _count_svs(sd) for net, sd in (("G", G_sd), ("D", D_sd))}
    if svs["G"] != svs["D"]:
        raise UnsupportedCheckpointError(
            f"G tracks {svs['G']} singular values and D {svs['D']} (num_G_SVs != num_D_SVs); "
            "our models track the same number in both")
    return {
        "sn_eps": float(tc.value(their_config, "SN_eps")),
        "bn_eps": float(tc.value(their_config, "BN_eps")),
        "sn_power_iterations": int(tc.value(their_config, "num_G_SV_itrs")),
        "sn_tracked_svs": svs["G"],
    }


def attention_at(sd: dict[str, Tensor], sizes: list[int], net: str,
                 pattern: str = r"^blocks\.(\d+)\.1\.") -> int | None:
    """Resolution of the one non-local block, None without one. `pattern` finds it and its group is the
    index into `sizes`: BigGAN's `blocks.{i}.1.*` by default, BigGAN-deep's G the same, its D `.2`."""
    found = sorted({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})
    if not found:
        return None
    if len(found) > 1:
        raise UnsupportedCheckpointError(
            f"{net} has non-local blocks after blocks {found}; ours have at most one")
    size = sizes[found[0]]
    if sizes.index(size) != found[0]:
        # Ours places it after the FIRST block (BigGAN-deep's D: stage) of that size (biggan.models.arch).
        raise UnsupportedCheckpointError(
            f"{net}'s non-local block follows block {found[0]}, not the first block at {size} px")
    return size


def _check_against_config(cfg: ModelConfig, their: dict[str, Any] | None) -> None:
    if their is None:
        return
    checks = {
        "resolution": cfg.resolution, "n_classes": cfg.num_classes, "G_ch": cfg.ch,
        "D_ch": cfg.discriminator_ch, "G_shared": cfg.shared, "hier": cfg.hier,
    }
    for key, ours in checks.items():
        if key in their and their[key] is not None and their[key] != ours:
            raise UnsupportedCheckpointError(
                f"state_dict.pth's config says {key}={their[key]!r}, the weights' shapes say {ours!r}")
    # Attention is left to the shapes: their G_attn/D_attn may name resolutions the arch lacks.
