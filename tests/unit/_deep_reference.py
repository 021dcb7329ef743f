"""What the BigGAN-deep reference data (tests/data/bigganpytorch_deep*.pt) was made from, shared by
the script that makes it (tests/data/make_bigganpytorch_deep.py, which runs BigGAN-PyTorch's own
BigGANdeep.py) and the tests that check our models against it (test_interop_deep.py).

Each case is BigGAN-PyTorch's argparse-style settings (what their train.py passes to
`BigGANdeep.Generator(**config)` / `Discriminator(**config)`) and the ModelConfig of ours that
should compute the same functions. Nothing here imports their code.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from biggan.config import ModelConfig

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL_FILE = DATA / "bigganpytorch_deep.pt"  # their state dicts, inputs and outputs at small widths
WIDE_FILE = DATA / "bigganpytorch_deep_ch128.pt"  # key shapes and outputs at the real width (no weights)
BATCH = {"32px": 4, "64px": 4, "128px": 2, "wide": 2}  # images dominate the file: fewer at 128 px
GRADIENT_CASES = ("32px",)  # gradients stored for these (see test_interop_deep.py on why not 64 and 128 px)

# Their settings common to every case: SN and BN epsilons of their deep launch script.
_COMMON = {"model": "BigGANdeep", "G_depth": 2, "D_depth": 2, "G_shared": True, "hier": True,
           "BN_eps": 1e-5, "SN_eps": 1e-6, "D_wide": True, "G_param": "SN", "D_param": "SN",
           "norm_style": "bn", "G_nl": "relu", "D_nl": "relu"}

CASES: dict[str, dict] = {
    # 32 px: their D labels every stage "16", so D attention would follow every stage: none here.
    "32px": {**_COMMON, "resolution": 32, "n_classes": 10, "G_ch": 4, "D_ch": 8, "dim_z": 16, "shared_dim": 8,
             "G_attn": "16", "D_attn": "0", "num_G_SVs": 1, "num_D_SVs": 1},
    # 64 px with three tracked singular values (the Gram-Schmidt path of the power iteration).
    "64px": {**_COMMON, "resolution": 64, "n_classes": 7, "G_ch": 4, "D_ch": 4, "dim_z": 20, "shared_dim": 12,
             "G_attn": "32", "D_attn": "32", "num_G_SVs": 3, "num_D_SVs": 3},
    "128px": {**_COMMON, "resolution": 128, "n_classes": 5, "G_ch": 4, "D_ch": 4, "dim_z": 24, "shared_dim": 8,
              "G_attn": "64", "D_attn": "64", "num_G_SVs": 1, "num_D_SVs": 1},
}
# The paper's BigGAN-deep at 128 px (ch 128, 1,000 classes, z 128, shared embedding 128): its
# weights would be 340 MB, so the file holds their key shapes and outputs; the weights are
# `recipe_state`'s, which the test rebuilds from the shapes.
WIDE = {**_COMMON, "resolution": 128, "n_classes": 1000, "G_ch": 128, "D_ch": 128, "dim_z": 128,
        "shared_dim": 128, "G_attn": "64", "D_attn": "64", "num_G_SVs": 1, "num_D_SVs": 1}
# Their classes counted at the paper's width (ch 128, 1,000 classes, z 128, shared 128).
COUNT_RESOLUTIONS = (128, 256)


def our_config(their: dict) -> ModelConfig:
    """The ModelConfig whose deep G and D compute what theirs computes with these settings."""
    def attention(spec: str) -> int | None:
        return int(spec) if int(spec) > 0 else None

    return ModelConfig(
        arch="deep", resolution=their["resolution"], num_classes=their["n_classes"], ch=their["G_ch"],
        d_ch=None if their["D_ch"] == their["G_ch"] else their["D_ch"],
        dim_z=their["dim_z"], shared_dim=their["shared_dim"],
        g_attention=attention(their["G_attn"]), d_attention=attention(their["D_attn"]),
        sn_eps=their["SN_eps"], bn_eps=their["BN_eps"], sn_tracked_svs=their["num_G_SVs"],
    )


def inputs(their: dict, batch: int, seed: int = 11) -> dict[str, torch.Tensor]:
    """z, y (G's and D's class) and x (D's image input), from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    res = their["resolution"]
    return {"z": torch.randn(batch, their["dim_z"], generator=gen),
            "y": torch.randint(0, their["n_classes"], (batch,), generator=gen),
            "x": torch.rand(batch, 3, res, res, generator=gen) * 2 - 1}


def recipe_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A deterministic tensor for one of their keys: random, but what each kind of tensor holds
    when trained (positive BN variances, unit-ish SN vectors, a non-zero attention gain)."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "stored_var":
        return torch.rand(shape, generator=gen) * 0.5 + 0.75
    if leaf == "stored_mean" or leaf == "bias":
        return torch.randn(shape, generator=gen) * 0.05
    if leaf.startswith("sv"):
        return torch.ones(shape)
    if leaf == "gamma":
        return torch.tensor(0.3)
    if leaf == "gain":  # the output BN's gain
        return 1 + torch.randn(shape, generator=gen) * 0.05
    return torch.randn(shape, generator=gen)  # weights (SN divides them) and u vectors


def recipe_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {key: recipe_tensor(key, tuple(shape)) for key, shape in shapes.items()}
