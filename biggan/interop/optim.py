"""Adam state dicts between two parameter orders (ours <-> BigGAN-PyTorch's).

An optimizer state dict indexes its per-parameter state by position in `parameters()`. Our
modules register their layers in another order than theirs (our GBlock: bn1, conv1, bn2,
conv2, conv_sc; their `layers.GBlock`: conv1, conv2, conv_sc, bn1, bn2), so the state is
re-keyed by parameter NAME: position in the source order -> name -> position in the target.
Moments of a transposed tensor (G's per-BN class embeddings without `shared`) are transposed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import Tensor


def remap_adam(
    opt_sd: dict[str, Any],  # torch.optim.Adam state_dict()
    source_names: list[str],  # parameter names in the source's parameters() order
    target_names: list[str],  # parameter names in the target's parameters() order
    rename: Callable[[str], str | None],  # source name -> target name
    transform: Callable[[str, Tensor], Tensor],  # (source name, moment) -> moment for the target
) -> tuple[dict[str, Any] | None, str | None]:
    """(remapped state dict, None) or (None, why it cannot be remapped)."""
    groups = opt_sd.get("param_groups", [])
    if len(groups) != 1:
        return None, f"{len(groups)} parameter groups (expected one: Adam over all parameters)"
    ids = list(groups[0]["params"])
    if len(ids) != len(source_names):
        return None, f"it has {len(ids)} parameters, the model {len(source_names)}"
    state = opt_sd.get("state", {})
    if any("fp32_p" in entry for entry in state.values()):
        return None, "it is their fp16 Adam16 state (fp32 master copies), not torch Adam"
    position = {name: i for i, name in enumerate(target_names)}
    new_state: dict[int, dict[str, Any]] = {}
    for param_id, source in zip(ids, source_names):
        target = rename(source)
        if target not in position:
            return None, f"parameter {source!r} has no counterpart {target!r}"
        if param_id in state:
            new_state[position[target]] = {
                key: transform(source, value) if isinstance(value, Tensor) and value.dim() > 0
                else copy.deepcopy(value)
                for key, value in state[param_id].items()
            }
    group = {key: copy.deepcopy(value) for key, value in groups[0].items() if key != "params"}
    group["params"] = list(range(len(target_names)))
    return {"state": new_state, "param_groups": [group]}, None
