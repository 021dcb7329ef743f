"""Per-resolution architecture tables (Appendix B, Tables 4-6; small variants for tests).

Channel multipliers are those of BigGAN-PyTorch's `G_arch` / `D_arch`, which reproduce the
paper's tables: at 128 px G's blocks go ch x [16, 16, 8, 4, 2] -> [16, 8, 4, 2, 1] from a
4x4 start (Table 4a), 256 px adds a block (Table 5a), 512 px another (Table 6a). D mirrors
them with one extra non-downsampling block at 4x4. The 32 and 64 px variants are the
authors' small ones (CIFAR-style at 32) for tests and the CPU demo.
"""

from __future__ import annotations

from dataclasses import dataclass

# Latent size per resolution. Appendix B: 120 at 128 px, 140 at 256, 128 at 512; the
# small variants pick a size that splits evenly into their chunks.
DEFAULT_DIM_Z = {32: 128, 64: 120, 128: 120, 256: 140, 512: 128}

# Non-local block resolution. Appendix B: G at 64 (128 px), 128 (256 px), 64 (512 px);
# D at 64 in all three (Tables 4b-6b). Small variants: one block at half resolution.
DEFAULT_G_ATTENTION = {32: 16, 64: 32, 128: 64, 256: 128, 512: 64}
DEFAULT_D_ATTENTION = {32: 16, 64: 32, 128: 64, 256: 64, 512: 64}

_G_IN = {
    32: [4, 4, 4],
    64: [16, 16, 8, 4],
    128: [16, 16, 8, 4, 2],
    256: [16, 16, 8, 8, 4, 2],
    512: [16, 16, 8, 8, 4, 2, 1],
}
_G_OUT = {
    32: [4, 4, 4],
    64: [16, 8, 4, 2],
    128: [16, 8, 4, 2, 1],
    256: [16, 8, 8, 4, 2, 1],
    512: [16, 8, 8, 4, 2, 1, 1],
}
_D_IN = {  # after the RGB input block
    32: [4, 4, 4],
    64: [1, 2, 4, 8],
    128: [1, 2, 4, 8, 16],
    256: [1, 2, 4, 8, 8, 16],
    512: [1, 1, 2, 4, 8, 8, 16],
}
_D_OUT = {
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
    512: [1, 1, 2, 4, 8, 8, 16, 16],
}
_D_DOWN = {
    32: [True, True, False, False],
    64: [True] * 4 + [False],
    128: [True] * 5 + [False],
    256: [True] * 6 + [False],
    512: [True] * 7 + [False],
}

BOTTOM_WIDTH = 4  # G starts from a 4x4 map (Table 4a)


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    out_channels: int
    resample: bool  # G: 2x nearest upsample; D: 2x2 average-pool downsample
    resolution: int  # spatial size at the block's output
    attention: bool  # a non-local block follows this one


def generator_blocks(resolution: int, ch: int, attention: int | None) -> list[BlockSpec]:
    """G's residual blocks; attention after the (first) block whose output is `attention` px."""
    specs, size, placed = [], BOTTOM_WIDTH, False
    for cin, cout in zip(_G_IN[resolution], _G_OUT[resolution]):
        size *= 2
        here = attention == size and not placed
        placed = placed or here
        specs.append(BlockSpec(ch * cin, ch * cout, True, size, here))
    _check_attention_placed("G", resolution, attention, placed)
    return specs


def discriminator_blocks(resolution: int, ch: int, attention: int | None) -> list[BlockSpec]:
    """D's residual blocks (the first takes RGB); attention after the first block at that size."""
    specs, size, placed = [], resolution, False
    ins = [3] + [ch * c for c in _D_IN[resolution]]
    for cin, cout, down in zip(ins, _D_OUT[resolution], _D_DOWN[resolution]):
        size = size // 2 if down else size
        here = attention == size and not placed
        placed = placed or here
        specs.append(BlockSpec(cin, ch * cout, down, size, here))
    _check_attention_placed("D", resolution, attention, placed)
    return specs


def discriminator_table(resolution: int) -> tuple[list[int], list[int], list[bool]]:
    """D's per-block tables as multiples of ch: input widths after the RGB block, output widths
    (the RGB block's first), downsampling flags (BigGAN-PyTorch's `D_arch`; BigGAN-deep derives its own)."""
    return list(_D_IN[resolution]), list(_D_OUT[resolution]), list(_D_DOWN[resolution])


def _check_attention_placed(net: str, resolution: int, attention: int | None, placed: bool) -> None:
    if attention is not None and not placed:
        raise ValueError(f"{net} at {resolution} px has no block at {attention} px for the non-local block")


def resolve_attention(value: int | None, resolution: int, defaults: dict[int, int]) -> int | None:
    """Config value -> attention resolution: -1 = the paper's, None = no attention."""
    if value == -1:
        return defaults[resolution]
    return value


def resolve_dim_z(dim_z: int | None, resolution: int) -> int:
    return dim_z if dim_z is not None else DEFAULT_DIM_Z[resolution]
