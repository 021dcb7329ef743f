"""Read BigGAN-PyTorch's `.pth` files without executing anything they name.

Their `utils.save_weights` writes `torch.save(G.state_dict())` (and D, G_ema, both optimizers'
state dicts): tensors in plain containers, which `torch.load(weights_only=True)` reads as is.

`state_dict.pth` is different: `train.py` stores its whole `config` dict in it, and that dict
holds `G_activation` / `D_activation` as pickled `nn.ReLU` MODULES (`utils.activation_dict`);
`best_IS` / `best_FID` may be numpy scalars. Files written by torch < 1.6 (their released
checkpoints) use the legacy format, which saves a module class through a `('module', ...)`
persistent id that `weights_only=True` cannot read at all, whatever is allowlisted. So this one
file is read with `weights_only=False` and a RESTRICTED unpickler (the pattern of Python's
pickle docs, "Restricting Globals"): every class or function the pickle names resolves to
either a short allowlist of data types (tensor rebuilders, OrderedDict, numpy scalars) or an
inert `Opaque` placeholder that only records its name and arguments. Nothing the file names
is imported or called; all we read from that dict are plain values (`G_ch`, `BN_eps`, ...).
"""

from __future__ import annotations

import codecs
import collections
import pickle
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biggan.interop.errors import UnsafePickleError


class Opaque:
    """Stands in for an object of a class the file names but we never import or call."""

    pickled_name = "?"
    dump_patches = False  # torch's legacy loader asks this of pickled module classes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<not loaded: {self.pickled_name}>"


def _allowed() -> dict[str, Any]:
    """Names a state file may use for real: data containers and tensor/scalar rebuilders."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    allowed: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch.Size": torch.Size,
        "numpy.dtype": np.dtype,
        # numpy 1.x pickles say numpy.core.multiarray.scalar, numpy 2.x numpy._core...
        "numpy.core.multiarray.scalar": core.multiarray.scalar,
        "numpy._core.multiarray.scalar": core.multiarray.scalar,
        # Protocol 2 (torch.save's) writes bytes, e.g. a numpy scalar's, as _codecs.encode(str).
        "_codecs.encode": codecs.encode,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
    }
    # Protocol 2 spells builtins with their Python 2 module name.
    allowed.update({f"__builtin__.{n}": allowed[f"builtins.{n}"] for n in ("set", "frozenset")})
    for dtype in (torch.float16, torch.float32, torch.float64, torch.int64, torch.int32, torch.bool):
        allowed[str(dtype)] = dtype  # "torch.float32"
    return allowed


def _restricted_pickle_module(replaced: list[str]) -> types.ModuleType:
    """A stand-in for the `pickle` module whose Unpickler resolves names as described above."""
    allowed = _allowed()
    placeholders: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            full = f"{module}.{name}"
            if full in allowed:
                return allowed[full]
            if full not in placeholders:
                replaced.append(full)
                placeholders[full] = type("Opaque", (Opaque,), {"pickled_name": full})
            return placeholders[full]

    module = types.ModuleType("biggan_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.__version__ = "restricted"  # type: ignore[attr-defined]
    return module


def load_tensors(path: Path) -> Any:
    """A state dict (or optimizer state dict): strictly weights_only, nothing allowlisted."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises UnpicklingError, or RuntimeError wrapping it
        raise UnsafePickleError(
            f"{path} is not a plain state dict; refusing to unpickle it ({_first_line(error)})"
        ) from None


def load_state(path: Path) -> tuple[Any, list[str]]:
    """Their `state_dict.pth`; returns the object and the names replaced by `Opaque`."""
    replaced: list[str] = []
    with warnings.catch_warnings():
        # Legacy files carry module sources that torch compares with the placeholder's; the
        # "source has changed" warnings say nothing here.
        warnings.simplefilter("ignore")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False,
                             pickle_module=_restricted_pickle_module(replaced))
        except Exception as error:  # noqa: BLE001 - a restricted unpickler fails in many ways; each means: not plain data
            raise UnsafePickleError(f"{path} could not be read as data ({_first_line(error)})") from None
    return obj, replaced


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (useful or lines or [type(error).__name__])[0][:300]


def plain(value: Any) -> Any:
    """Numpy scalars and one-element tensors as Python numbers, containers recursively (JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"<tensor {tuple(value.shape)}>"
    if isinstance(value, Opaque):
        return repr(value)
    return value
