"""Read a BigGAN-PyTorch weights folder as its `utils.save_weights` writes it.

`save_weights(G, D, state_dict, weights_root, experiment_name, name_suffix, G_ema)` writes, into
`weights_root/experiment_name/`, `G.pth`, `G_optim.pth`, `D.pth`, `D_optim.pth`,
`state_dict.pth` and (with `--ema`) `G_ema.pth`; with a `name_suffix` (`copy0`, `best3`, ...)
each name gets `_<suffix>` before `.pth`. `G.pth` etc. are the modules' `state_dict()`s,
`*_optim.pth` the Adam state dicts, `state_dict.pth` their training state: `itr`, `epoch`,
`save_num`, `save_best_num`, `best_IS`, `best_FID` and the run's `config`.

Nothing here knows our layout: tensors come back under BigGAN-PyTorch's own names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from biggan.interop.errors import InteropError
from biggan.interop.safe_load import load_state, load_tensors, plain

REQUIRED = ("G", "D")
OPTIONAL = ("G_ema", "G_optim", "D_optim", "state_dict")


@dataclass
class ImportedWeights:
    """BigGAN-PyTorch's files, read; tensors under their names, in their files' order."""

    source: Path  # the folder read
    G: dict[str, Tensor]
    D: dict[str, Tensor]
    G_ema: dict[str, Tensor] | None  # None when the run had no --ema
    G_optim: dict[str, Any] | None  # Adam state dicts (their parameter order)
    D_optim: dict[str, Any] | None
    state: dict[str, Any]  # itr, epoch, best_IS, best_FID, ... as plain numbers (config removed)
    config: dict[str, Any] | None  # their run's config (argparse names), None without state_dict.pth
    notes: list[str] = field(default_factory=list)  # what was read, skipped or replaced

    @property
    def iteration(self) -> int:
        return int(self.state.get("itr", 0) or 0)


def file_name(kind: str, suffix: str | None) -> str:
    """`utils.save_weights`'s file name: `join_strings('_', [kind, suffix]) + '.pth'`."""
    return f"{kind}_{suffix}.pth" if suffix else f"{kind}.pth"


def read_bigganpytorch(weights_dir: Path | str, suffix: str | None = None) -> ImportedWeights:
    """Read G, D (required), G_ema, the optimizers and state_dict.pth (optional) from a folder.

    `suffix` selects one of the extra copies `save_weights` makes (`copy0`, `best0`, ...).
    """
    root = Path(weights_dir)
    if not root.is_dir():
        raise InteropError(f"{root} is not a folder")
    paths = {kind: root / file_name(kind, suffix) for kind in REQUIRED + OPTIONAL}
    missing = [paths[kind].name for kind in REQUIRED if not paths[kind].is_file()]
    if missing:
        found = sorted(p.name for p in root.glob("*.pth"))
        raise InteropError(
            f"{root} has no {' or '.join(missing)} (BigGAN-PyTorch's utils.save_weights names); "
            f"it holds {found or 'no .pth files'}" + ("" if suffix else "; pick a copy with a suffix")
        )
    notes: list[str] = []
    loaded: dict[str, Any] = {}
    for kind in REQUIRED + ("G_ema", "G_optim", "D_optim"):
        if paths[kind].is_file():
            loaded[kind] = load_tensors(paths[kind])
            notes.append(f"read {paths[kind].name}")
    for kind in REQUIRED + ("G_ema",):
        if kind in loaded and not _is_state_dict(loaded[kind]):
            raise InteropError(f"{paths[kind]} is not a state dict of tensors")
    state, config = {}, None
    if paths["state_dict"].is_file():
        raw, replaced = load_state(paths["state_dict"])
        if not isinstance(raw, dict):
            raise InteropError(f"{paths['state_dict']} does not hold BigGAN-PyTorch's state dict")
        config = raw.get("config")
        state = plain({k: v for k, v in raw.items() if k != "config"})
        notes.append(f"read {paths['state_dict'].name}")
        if replaced:
            notes.append(f"{paths['state_dict'].name} names {', '.join(sorted(replaced))}: "
                         "kept as inert placeholders, never imported or run")
    else:
        notes.append(f"no {paths['state_dict'].name}: architecture from tensor shapes alone")
    if "G_ema" not in loaded:
        notes.append(f"no {paths['G_ema'].name} (run without --ema): G_ema starts as a copy of G")
    return ImportedWeights(
        source=root,
        G=dict(loaded["G"]),
        D=dict(loaded["D"]),
        G_ema=dict(loaded["G_ema"]) if "G_ema" in loaded else None,
        G_optim=loaded.get("G_optim"),
        D_optim=loaded.get("D_optim"),
        state=state,
        config=dict(config) if isinstance(config, dict) else None,
        notes=notes,
    )


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(v, Tensor) for v in obj.values())
