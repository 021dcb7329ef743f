"""Our weights -> BigGAN-PyTorch's files (the inverse of the import).

The files are those their `utils.save_weights` writes and `utils.load_weights` reads: G.pth,
D.pth, G_ema.pth, state_dict.pth (their training state with a `config` their
`sample.py --config_from_name` reads) and, when optimizer states are given, G_optim.pth and
D_optim.pth in their parameter order. Everything is saved as plain tensors, numbers and
strings, so their code (and `torch.load(weights_only=True)`) reads it without our package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from biggan.config import ModelConfig
from biggan.interop.convert import is_shared, rename_to_theirs
from biggan.interop.errors import UnsupportedCheckpointError
from biggan.interop.keymap import needs_transpose, their_key, their_order
from biggan.interop.optim import remap_adam
from biggan.interop.their_config import OUTPUT_BN_EPS, their_config_from
from biggan.models import deep_arch as deep
from biggan.models import discriminator_class, generator_class
from biggan.models.arch import (
    DEFAULT_D_ATTENTION,
    DEFAULT_G_ATTENTION,
    discriminator_blocks,
    resolve_attention,
)

# Their D_arch's per-block 'resolution' labels, which decide where D_attn puts non-local blocks
# (every block whose label matches). At 32 px every block is labelled 16 although blocks 1-3
# run at 8x8, and their D_arch has no 512 entry. Elsewhere the labels are the real sizes.
_THEIR_D_LABELS = {32: [16, 16, 16, 16]}


def to_bigganpytorch(
    G_sd: dict[str, Tensor],
    D_sd: dict[str, Tensor],
    G_ema_sd: dict[str, Tensor] | None,
    model: ModelConfig,
    iteration: int = 0,  # written as their `itr`
    opt_G: dict[str, Any] | None = None,  # our Adam state dicts (our parameter order)
    opt_D: dict[str, Any] | None = None,
    notes: list[str] | None = None,  # receives what their code will not reproduce exactly
) -> dict[str, Any]:
    """{file name: object} in their layout; `write_bigganpytorch` saves it."""
    notes = notes if notes is not None else []
    if not model.shared and model.hier:
        raise UnsupportedCheckpointError(
            "hier without shared: BigGAN-PyTorch's G cannot run it, so its layout cannot hold it")
    if model.rgb_channels != 3:
        raise UnsupportedCheckpointError(
            f"G's output conv makes {model.rgb_channels} channels (TF-Hub's BigGAN-deep): BigGAN-PyTorch's "
            "makes 3, so its layout cannot hold it")
    with torch.device("meta"):
        G_ref, D_ref = generator_class(model)(model), discriminator_class(model)(model)
    defaults = (deep.DEFAULT_G_ATTENTION, deep.DEFAULT_D_ATTENTION) if model.arch == "deep" else (
        DEFAULT_G_ATTENTION, DEFAULT_D_ATTENTION)
    g_attn = resolve_attention(model.g_attention, model.resolution, defaults[0])
    d_attn = resolve_attention(model.d_attention, model.resolution, defaults[1])
    _note_what_they_cannot_build(model, d_attn, notes)

    files: dict[str, Any] = {"G.pth": rename_to_theirs(G_sd, "G"), "D.pth": rename_to_theirs(D_sd, "D")}
    if G_ema_sd is not None:
        files["G_ema.pth"] = rename_to_theirs(G_ema_sd, "G")
    for name, opt, ref, net in (("G_optim.pth", opt_G, G_ref, "G"), ("D_optim.pth", opt_D, D_ref, "D")):
        if opt is not None:
            files[name] = _optimizer_to_theirs(opt, ref, net, notes)
    files["state_dict.pth"] = {
        "itr": int(iteration), "epoch": 0, "save_num": 0, "save_best_num": 0,
        "best_IS": 0, "best_FID": 999999,  # train.py's initial values: no metric of theirs was run
        "config": their_config_from(model, G_ref.dim_z, g_attn, d_attn),
    }
    return files


def write_bigganpytorch(files: dict[str, Any], out_dir: Path | str) -> list[Path]:
    """torch.save each file into `out_dir` (temp file + os.replace, so none is half-written)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        os.close(fd)
        try:
            torch.save(obj, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(out / name)
    return written


def _note_what_they_cannot_build(model: ModelConfig, d_attn: int | None, notes: list[str]) -> None:
    if model.resolution == 512 and model.arch == "deep":
        notes.append("their BigGANdeep.py has no 512 px G_arch or D_arch: their code cannot build either net")
    elif model.resolution == 512:
        notes.append("their D_arch has no 512 px entry: their code can load G.pth, not D.pth")
    elif d_attn is not None:
        labels = _THEIR_D_LABELS.get(model.resolution)
        if model.arch == "deep":  # their deep D labels stages, which are ours
            sizes = [stage[-1].resolution for stage in deep.discriminator_stages_deep(model.resolution, 1, None)]
            labels = labels[:len(sizes)] if labels else None
        else:
            sizes = [s.resolution for s in discriminator_blocks(model.resolution, 1, None)]
        labels = labels or sizes
        theirs = [i for i, label in enumerate(labels) if label == d_attn]
        if theirs != [sizes.index(d_attn)]:
            notes.append(f"their Discriminator with D_attn={d_attn} puts non-local blocks after blocks "
                         f"{theirs}, ours has one after block {sizes.index(d_attn)}: their code can "
                         "load G.pth, not D.pth")
    if model.bn_eps != OUTPUT_BN_EPS:
        notes.append(f"bn_eps {model.bn_eps}: their G's output BN always uses {OUTPUT_BN_EPS}, so their "
                     "images differ slightly from ours")
    if model.latent != "normal":
        notes.append(f"latent prior {model.latent!r}: their sampling code draws N(0, I) only")


def _optimizer_to_theirs(opt: dict[str, Any], ref: torch.nn.Module, net: str, notes: list[str]) -> dict[str, Any]:
    ours = [name for name, _ in ref.named_parameters()]
    theirs = their_order([their_key(name, net) for name in ours], net)
    shared = net == "D" or is_shared(dict.fromkeys(ours))

    def transform(source: str, moment: Tensor) -> Tensor:
        moment = moment.detach().clone()
        return moment.t().contiguous() if needs_transpose(source, shared) else moment

    remapped, why = remap_adam(opt, ours, theirs, lambda name: their_key(name, net), transform)
    if remapped is None:
        raise UnsupportedCheckpointError(f"{net} optimizer cannot be written in their order: {why}")
    return remapped
