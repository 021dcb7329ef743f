"""Start a new run from another run's G, D and G_ema weights (`biggan train --init-from`).

Adapting a pretrained BigGAN to a small data set of one's own (ajbrock/BigGAN-PyTorch issues
10, 43, 94) keeps every weight except those that index classes. When the class count differs,
only the class embeddings are drawn afresh, the way our models initialise them
(`biggan.models.init`: orthogonal weights; `biggan.models.spectral`: u ~ N(0, I), sv = 1):

- G with the shared embedding: `shared.weight` [classes, shared_dim];
- G without it: the class columns of each BN's gain/bias projection [C, classes (+ z chunk)];
  the z-chunk columns, which do not depend on classes, are kept;
- D: the projection embedding `embed.weight` [classes, C] and its SN buffers.

G_ema receives G's new class embeddings, so both start from the same network as a fresh run's
do. Optimizers are not touched: the caller builds fresh ones. Call this after anything that
copies G into G_ema (our training loop's EMA does so when it is constructed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import init

from biggan.config import ModelConfig
from biggan.interop.check import first_mismatch, shapes
from biggan.interop.errors import LayerMismatchError


@dataclass
class InitReport:
    """What init_from copied and what it drew afresh."""

    source_classes: int
    target_classes: int
    reinitialised: dict[str, list[str]] = field(default_factory=dict)  # net -> keys (or key[columns])
    copied: dict[str, int] = field(default_factory=dict)  # net -> tensors copied unchanged
    notes: list[str] = field(default_factory=list)
    from_scratch: list[str] = field(default_factory=list)  # nets the source has untrained: left as initialised

    def summary(self) -> str:
        scratch = ""
        if self.from_scratch:
            scratch = (f"; {' and '.join(self.from_scratch)} starts from scratch (the source has no trained "
                       f"{' or '.join(self.from_scratch)}, e.g. TF-Hub released G only)")
        if not any(self.reinitialised.values()):
            nets = [net for net in ("G", "D", "G_ema") if net not in self.from_scratch]
            names = ", ".join(nets[:-1]) + f" and {nets[-1]}" if len(nets) > 1 else nets[0]
            return f"initialised {names} from the source run ({self.target_classes} classes){scratch}"
        keys = "; ".join(f"{net}: {', '.join(keys)}" for net, keys in self.reinitialised.items() if keys)
        return (f"class count {self.source_classes} -> {self.target_classes}: re-initialised the class "
                f"embeddings only ({keys}); every other weight comes from the source run{scratch}")


def init_from(
    G: nn.Module,
    D: nn.Module,
    G_ema: nn.Module,
    source_state: Mapping[str, Mapping[str, Tensor]],  # {"G": ..., "D": ..., "G_ema": ...} (our names)
    source_cfg: ModelConfig,
    target_cfg: ModelConfig,  # the config G, D and G_ema were built from
    generator: torch.Generator | None = None,  # draws redrawn class embeddings; None = a fixed seed (0)
) -> InitReport:
    """Copy the source weights into G, D, G_ema; redraw class embeddings if the class count differs.

    Raises LayerMismatchError (first layer, both shapes) for any other shape difference; nothing
    is changed before every net has been checked.
    """
    report = InitReport(source_cfg.num_classes, target_cfg.num_classes)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)  # never the global RNG
    fields = ("arch", "resolution", "ch", "d_ch", "dim_z", "shared_dim", "shared", "hier", "g_attention",
              "d_attention", "sn_tracked_svs", "rgb_channels")
    for name in fields:
        if getattr(source_cfg, name) != getattr(target_cfg, name):
            report.notes.append(f"{name} differs: source {getattr(source_cfg, name)!r}, "
                                f"target {getattr(target_cfg, name)!r}")
    classes_change = source_cfg.num_classes != target_cfg.num_classes
    G_src, D_src = dict(source_state["G"]), dict(source_state["D"])
    G_ema_src = dict(source_state.get("G_ema") or G_src)
    # A net the source never trained (an imported generator's D) keeps the initialisation it has.
    report.from_scratch = [net for net in ("G", "D", "G_ema") if net in source_state.get("untrained", ())]
    for src, model in ((G_src, G), (G_ema_src, G_ema)):
        _drop_stored_statistics(src, model, report)

    plans = []
    for net, model, src in (("G", G, G_src), ("D", D, D_src), ("G_ema", G_ema, G_ema_src)):
        if net in report.from_scratch:
            report.reinitialised[net], report.copied[net] = [], 0
            continue
        redraw = _class_keys(model, net) if classes_change else {}
        kept = {k: v for k, v in src.items() if k not in redraw}
        expected = {k: s for k, s in shapes(model).items() if k not in redraw}
        error = first_mismatch(net, expected, kept) or _z_columns_mismatch(net, model, src, redraw, source_cfg)
        if error is not None:
            raise error
        plans.append((net, model, kept, redraw))

    fresh: dict[str, Tensor] = {}  # G's redrawn tensors, reused for G_ema
    sources = {"G": G_src, "D": D_src, "G_ema": G_ema_src}
    for net, model, kept, redraw in plans:
        target = model.state_dict()
        target.update(kept)
        for key, columns in redraw.items():
            value = fresh[key].clone() if net == "G_ema" and key in fresh else _redraw(key, target[key], generator)
            if columns is not None and key in sources[net]:
                _keep_z_columns(value, sources[net][key], columns)
            target[key] = value
            if net == "G":
                fresh[key] = value
        model.load_state_dict(target)
        report.reinitialised[net] = [key if columns is None else f"{key}[:, :{columns}]"
                                     for key, columns in redraw.items() if not re.search(r"\.(u|sv)\d+$", key)]
        report.copied[net] = len(kept)
    return report


def _drop_stored_statistics(src: dict[str, Tensor], model: nn.Module, report: InitReport) -> None:
    """BN statistics stored per truncation (TF-Hub's generators) describe the source's weights only:
    a run trained from them samples with standing statistics, so a target without the table drops it."""
    stored = [key for key in src if key.startswith("truncation_statistics.")]
    if stored and not any(key.startswith("truncation_statistics.") for key in model.state_dict()):
        for key in stored:
            del src[key]
        note = "the source's BN statistics stored per truncation are dropped: the new run uses standing statistics"
        if note not in report.notes:
            report.notes.append(note)


def _class_keys(model: nn.Module, net: str) -> dict[str, int | None]:
    """{key: None (whole tensor) or k (its first k columns)} that index classes in `model`."""
    sd = model.state_dict()
    if net == "D":
        return {k: None for k in sd if re.match(r"^embed\.(weight|u\d+|sv\d+)$", k)}
    if "shared.weight" in sd:
        return {"shared.weight": None}
    classes = model.num_classes
    return {k: classes for k in sd if re.match(r"^blocks\.\d+\.0\.bn\d+\.(gain|bias)\.weight$", k)}


def _z_columns_mismatch(net: str, model: nn.Module, src: dict[str, Tensor], redraw: dict[str, int | None],
                        source_cfg: ModelConfig) -> LayerMismatchError | None:
    """Non-shared G: the kept z-chunk columns must have the same shape on both sides."""
    target = shapes(model)
    for key, classes in redraw.items():
        if classes is None:
            continue
        rows, cols = target[key]
        found = tuple(src[key].shape) if key in src else None
        if found is None or found[0] != rows or found[1] - source_cfg.num_classes != cols - classes:
            return LayerMismatchError(net, key, target[key], found)
    return None


@torch.no_grad()
def _redraw(key: str, current: Tensor, generator: torch.Generator) -> Tensor:
    """A fresh tensor for `key` as our models initialise it (see module docstring)."""
    if re.search(r"\.u\d+$", key):
        return torch.randn(current.shape, generator=generator, dtype=current.dtype).to(current.device)
    if re.search(r"\.sv\d+$", key):
        return torch.ones_like(current)
    fresh = torch.empty(current.shape, dtype=current.dtype)
    init.orthogonal_(fresh, generator=generator)
    return fresh.to(current.device)


@torch.no_grad()
def _keep_z_columns(fresh: Tensor, source: Tensor, classes: int) -> None:
    """G without `shared`: the columns after the class ones read the z chunk; keep the source's."""
    z_cols = fresh.shape[1] - classes
    if z_cols > 0:
        fresh[:, classes:] = source[:, source.shape[1] - z_cols:]
