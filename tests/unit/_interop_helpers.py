"""Shared by the interop/export tests: small random nets and BigGAN-PyTorch-layout folders.

`their_layout` renames our state dicts into BigGAN-PyTorch's names with its OWN string rules,
written from their BigGAN.py / layers.py (not with biggan.interop.keymap), so the import is
checked against an independent statement of their layout.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from biggan.config import ModelConfig
from biggan.models import Discriminator, Generator

SMALL_32 = ModelConfig(resolution=32, num_classes=10, ch=4, shared_dim=16, d_attention=None,
                       sn_tracked_svs=1, bn_eps=1e-5, sn_eps=1e-6)
# The ImageNet-128 architecture (1,000 classes, shared, hier, attention at 64 in G and D) at ch 8.
IMAGENET_128 = ModelConfig(resolution=128, num_classes=1000, ch=8, sn_tracked_svs=1, bn_eps=1e-5, sn_eps=1e-6)
UNSHARED_32 = SMALL_32.model_copy(update={"shared": False, "hier": False, "sn_tracked_svs": 2})


@torch.no_grad()
def random_nets(cfg: ModelConfig, seed: int = 0) -> tuple[Generator, Discriminator, Generator]:
    """G, D, G_ema with every tensor random: BN statistics moved, attention gamma non-zero."""
    torch.manual_seed(seed)
    G, D, G_ema = Generator(cfg), Discriminator(cfg), Generator(cfg)
    for net in (G, D, G_ema):
        for key, value in net.state_dict().items():
            if key.endswith("running_mean") or key.endswith("gamma") or key.endswith("output_bn.bias"):
                value.normal_(0, 0.3)
            elif key.endswith("running_var") or key.endswith("output_bn.gain"):
                value.uniform_(0.5, 2.0)
            elif re.search(r"\.u\d+$", key):
                value.normal_()
        net.eval()
    return G, D, G_ema


def their_layout(sd: dict[str, Tensor], net: str) -> dict[str, Tensor]:
    """Our state dict under BigGAN-PyTorch's names (see module docstring)."""
    shared = "shared.weight" in sd
    out = {}
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            continue  # their BN has no batch counter
        if net == "G":
            key = key.replace("output_bn.bn.running_", "output_layer.0.stored_")
            key = key.replace("output_bn.", "output_layer.0.").replace("output_conv.", "output_layer.2.")
            key = re.sub(r"\.bn\.running_(mean|var)$", r".stored_\1", key)  # ccbn keeps them itself
            if not shared and re.search(r"\.bn\d\.(gain|bias)\.weight$", key):
                value = value.t()  # their per-BN nn.Embedding is [classes, C]
        out[key] = value.detach().clone().contiguous()
    return out


def their_config(cfg: ModelConfig, **extra) -> dict:
    """What their train.py would have stored for this architecture (argparse names)."""
    config = {
        "model": "BigGAN", "resolution": cfg.resolution, "n_classes": cfg.num_classes, "G_ch": cfg.ch,
        "D_ch": cfg.ch, "G_shared": cfg.shared, "hier": cfg.hier, "shared_dim": cfg.shared_dim,
        "BN_eps": cfg.bn_eps, "SN_eps": cfg.sn_eps, "G_nl": "inplace_relu", "D_nl": "inplace_relu",
        "num_G_SVs": cfg.sn_tracked_svs, "num_D_SVs": cfg.sn_tracked_svs, "G_lr": 1e-4, "D_lr": 4e-4,
        "adam_eps": 1e-6, "G_B1": 0.0, "G_B2": 0.999, "batch_size": 256, "num_G_accumulations": 8,
        # train.py stores the activation MODULES too (utils.activation_dict)
        "G_activation": torch.nn.ReLU(inplace=True), "D_activation": torch.nn.ReLU(inplace=True),
    }
    config.update(extra)
    return config


def write_their_folder(folder: Path, cfg: ModelConfig, G, D, G_ema, legacy: bool = False, **config) -> Path:
    """A folder as their utils.save_weights writes it (legacy=True: torch < 1.6's file format)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"itr": 1234, "epoch": 3, "save_num": 0, "save_best_num": 1,
             "best_IS": 0.0, "best_FID": 999999, "config": their_config(cfg, **config)}
    files = {"G": their_layout(G.state_dict(), "G"), "D": their_layout(D.state_dict(), "D"),
             "G_ema": their_layout(G_ema.state_dict(), "G"), "state_dict": state}
    for name, obj in files.items():
        torch.save(obj, folder / f"{name}.pth", _use_new_zipfile_serialization=not legacy)
    return folder
