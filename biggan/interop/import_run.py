"""BigGAN-PyTorch weights -> our G, D, G_ema state dicts, config and optimizer states.

`import_bigganpytorch` is what `biggan import bigganpytorch --weights DIR` runs before the run
store writes a checkpoint: it reads their folder, decides our ModelConfig (from the files, or
a preset the caller passes), renames every tensor, checks each net against a model of that
config (first mismatching layer named, with both shapes) and re-keys their Adam states.
`load_into` then fills models the caller built from `ImportedRun.model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.interop.check import check_fits, first_mismatch, shapes
from biggan.interop.convert import fill_ours_only, is_shared, rename_from_theirs
from biggan.interop.infer import infer_model_config
from biggan.interop.keymap import needs_transpose, normalize_bn_layout, our_key, their_key
from biggan.interop.optim import remap_adam
from biggan.interop.reader import ImportedWeights, read_bigganpytorch
from biggan.interop.safe_load import plain
from biggan.interop.their_config import train_hints
from biggan.models import discriminator_class, generator_class


@dataclass
class ImportedRun:
    """Everything a run of ours needs from BigGAN-PyTorch's files, under our names."""

    model: ModelConfig  # build G, D, G_ema from this
    G: dict[str, Tensor]
    D: dict[str, Tensor]
    G_ema: dict[str, Tensor]  # a copy of G when their run had no EMA
    opt_G: dict[str, Any] | None  # Adam state dicts in our parameter order; None if absent/unusable
    opt_D: dict[str, Any] | None
    iteration: int  # their `itr`
    their_state: dict[str, Any]  # the rest of their state_dict.pth (epoch, best_IS, best_FID, ...)
    their_config: dict[str, Any] | None  # their config, JSON-ready (objects as '<not loaded: ...>')
    train_hints: dict[str, Any]  # their optimisation settings under our TrainConfig names
    notes: list[str] = field(default_factory=list)  # say these to the user


def import_bigganpytorch(
    weights: Path | str | ImportedWeights,  # their folder, or what read_bigganpytorch returned
    model: ModelConfig | None = None,  # a preset's architecture; None = inferred from the files
    suffix: str | None = None,  # one of save_weights' copies (copy0, best0, ...)
) -> ImportedRun:
    """Read, infer, rename, check; raises LayerMismatchError / UnsupportedCheckpointError."""
    imported = weights if isinstance(weights, ImportedWeights) else read_bigganpytorch(weights, suffix)
    notes = list(imported.notes)
    their_G, layout = normalize_bn_layout(imported.G)
    their_G_ema = normalize_bn_layout(imported.G_ema)[0] if imported.G_ema is not None else None
    if layout != "default":
        notes.append(f"their G was saved with {layout} BN: statistics read into our BN buffers")
    inferred = infer_model_config(their_G, imported.D, imported.config, notes)
    cfg = inferred if model is None else _from_preset(model, inferred, notes)

    with torch.device("meta"):  # shapes and names only; allocates nothing
        G_ref, D_ref = generator_class(cfg)(cfg), discriminator_class(cfg)(cfg)
    converted = {}
    for net, their_sd, ref in (("G", their_G, G_ref), ("D", imported.D, D_ref), ("G_ema", their_G_ema, G_ref)):
        if their_sd is None:
            continue
        kind = "D" if net == "D" else "G"
        ours = rename_from_theirs(their_sd, kind)
        fill_ours_only(ours, ref.state_dict())
        error = first_mismatch(net, shapes(ref), ours, lambda key, kind=kind: their_key(key, kind))
        if error is not None:
            raise error
        converted[net] = ours
    if "G_ema" not in converted:
        converted["G_ema"] = {k: v.clone() for k, v in converted["G"].items()}

    opt_G = _optimizer(imported.G_optim, list(imported.G), G_ref, "G", notes)
    opt_D = _optimizer(imported.D_optim, list(imported.D), D_ref, "D", notes)
    return ImportedRun(
        model=cfg, G=converted["G"], D=converted["D"], G_ema=converted["G_ema"],
        opt_G=opt_G, opt_D=opt_D, iteration=imported.iteration, their_state=imported.state,
        their_config=None if imported.config is None else plain(imported.config),
        train_hints=train_hints(imported.config), notes=notes,
    )


def load_into(G: nn.Module, D: nn.Module, G_ema: nn.Module, imported: ImportedRun) -> None:
    """Load an import into built models; all three are checked before any is changed."""
    pairs = (("G", G, imported.G), ("D", D, imported.D), ("G_ema", G_ema, imported.G_ema))
    for net, model, sd in pairs:
        kind = "D" if net == "D" else "G"
        check_fits(net, model, sd, lambda key, kind=kind: their_key(key, kind))
    for _, model, sd in pairs:
        model.load_state_dict(sd)


def _from_preset(preset: ModelConfig, inferred: ModelConfig, notes: list[str]) -> ModelConfig:
    # SN buffer count is a property of the files, not of an experiment: take it from them.
    if preset.sn_tracked_svs != inferred.sn_tracked_svs:
        notes.append(f"preset tracks {preset.sn_tracked_svs} singular values, the files "
                     f"{inferred.sn_tracked_svs}: using {inferred.sn_tracked_svs}")
        preset = preset.model_copy(update={"sn_tracked_svs": inferred.sn_tracked_svs})
    return preset


def _optimizer(opt_sd: dict[str, Any] | None, their_keys: list[str], ref: nn.Module, net: str,
               notes: list[str]) -> dict[str, Any] | None:
    if opt_sd is None:
        return None
    kind = "D" if net == "D" else "G"
    ours = [name for name, _ in ref.named_parameters()]
    param_set = set(ours)
    # Their parameters() order is their state dict's order restricted to parameters (their
    # three BN layouts differ in buffers only, so raw G.pth names serve).
    theirs = [k for k in their_keys if our_key(k, kind) in param_set]
    shared = kind == "D" or is_shared(dict.fromkeys(their_keys))

    def transform(source: str, moment: Tensor) -> Tensor:
        target = our_key(source, kind)
        moment = moment.detach().float().clone()
        return moment.t().contiguous() if needs_transpose(target, shared) else moment

    remapped, why = remap_adam(opt_sd, theirs, ours, lambda k: our_key(k, kind), transform)
    if remapped is None:
        notes.append(f"{net} optimizer not imported: {why}; fine-tuning starts a fresh one anyway")
    return remapped

