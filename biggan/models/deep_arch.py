"""BigGAN-deep's architecture tables (Appendix B), as data.

BigGAN-deep keeps BigGAN's channel progression but puts TWO bottleneck blocks at every
resolution (Appendix B: "4x deeper"): in G the first block of a stage keeps its width and size,
the second changes the width and upsamples; in D the first downsamples and changes the width,
the second keeps both. Per-stage channel multipliers (times `ch`):

- G: BigGAN's own table (biggan.models.arch), which BigGAN-PyTorch's `BigGANdeep.G_arch` repeats
  at 32-256 px and TF-Hub's `biggan-deep-512` module (pytorch-pretrained-biggan's BigGAN512
  layers) has at 512 px;
- D: BigGAN-PyTorch's `BigGANdeep.D_arch` at 32-256 px: a 3x3 input conv to the first stage's
  width, then BigGAN's D widths without its first (RGB) block. It has no 512 px entry; ours
  continues the same rule from BigGAN's 512 px D (one more stage at ch before doubling).

The paper's BigGAN-deep tables put the non-local block at 64 x 64 in G and D at every
resolution, where TF-Hub's modules have it too; the 32 and 64 px variants (tests, the CPU demo)
put it at half resolution, as the BigGAN ones do.
"""

from __future__ import annotations

from biggan.models.arch import BOTTOM_WIDTH, BlockSpec, discriminator_table, generator_blocks
from biggan.models.arch import DEFAULT_D_ATTENTION as BIGGAN_D_ATTENTION

DEPTH = 2  # blocks per resolution (Appendix B; BigGAN-PyTorch's G_depth = D_depth = 2)
CHANNEL_RATIO = 4  # bottleneck: the 3x3 convs run at a quarter of the block's input (G) / output (D) width

# Appendix B: BigGAN-deep uses a 128-d z at every resolution (TF-Hub's modules: z_dim 128).
DEFAULT_DIM_Z = {32: 128, 64: 128, 128: 128, 256: 128, 512: 128}
DEFAULT_G_ATTENTION = {32: 16, 64: 32, 128: 64, 256: 64, 512: 64}
# D's non-local block sits where BigGAN's does (64 x 64 at 128-512 px, Tables 4b-6b and Appendix B).
DEFAULT_D_ATTENTION = BIGGAN_D_ATTENTION


def _d_table(resolution: int) -> list[tuple[int, int, bool]]:
    """D's (input width, output width, downsample) per stage, as multiples of ch.

    BigGAN-PyTorch's `BigGANdeep.D_arch` is BigGAN's `D_arch` without the RGB block: the same input
    widths (the input conv makes the first), the output widths from the second block on, and the same
    downsampling flags in the same order (BigGAN's first block downsamples, so does the first stage here).
    """
    ins, outs, downs = discriminator_table(resolution)
    return list(zip(ins, outs[1:], downs))


def generator_blocks_deep(resolution: int, ch: int, attention: int | None) -> list[BlockSpec]:
    """G's blocks, two per stage; attention after the second block of the stage that ends at `attention` px."""
    specs, placed = [], False
    for stage in generator_blocks(resolution, ch, None):
        here = attention == stage.resolution and not placed
        placed = placed or here
        specs.append(BlockSpec(stage.in_channels, stage.in_channels, False, stage.resolution // 2, False))
        specs.append(BlockSpec(stage.in_channels, stage.out_channels, True, stage.resolution, here))
    _check_placed("G", resolution, attention, placed)
    return specs


def discriminator_stages_deep(resolution: int, ch: int, attention: int | None) -> list[list[BlockSpec]]:
    """D's stages (after the input conv), two blocks each; attention after the first stage at that size."""
    stages, size, placed = [], resolution, False
    for cin, cout, down in _d_table(resolution):
        size = size // 2 if down else size
        here = attention == size and not placed
        placed = placed or here
        stages.append([BlockSpec(ch * cin, ch * cout, down, size, False),
                       BlockSpec(ch * cout, ch * cout, False, size, here)])
    _check_placed("D", resolution, attention, placed)
    return stages


def discriminator_input_channels(resolution: int, ch: int) -> int:
    """Width of D's 3x3 input conv (BigGAN-PyTorch's `input_conv`)."""
    return ch * _d_table(resolution)[0][0]


def _check_placed(net: str, resolution: int, attention: int | None, placed: bool) -> None:
    if attention is not None and not placed:
        raise ValueError(f"BigGAN-deep {net} at {resolution} px has no stage at {attention} px for the non-local block")


__all__ = [
    "BOTTOM_WIDTH", "CHANNEL_RATIO", "DEFAULT_D_ATTENTION", "DEFAULT_DIM_Z", "DEFAULT_G_ATTENTION", "DEPTH",
    "BlockSpec", "discriminator_input_channels", "discriminator_stages_deep", "generator_blocks_deep",
]
