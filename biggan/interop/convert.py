"""State dicts between our layout and BigGAN-PyTorch's, both ways, tensor for tensor.

Names come from `keymap`'s tables; the only value change is the transpose of G's per-BN
class embeddings without the shared embedding (their nn.Embedding [classes, C] is our
nn.Linear [C, classes] on a one-hot). Tensors are copied, never shared with the input.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from biggan.interop.keymap import needs_transpose, our_key, their_key, their_order


def is_shared(G_sd: dict[str, Tensor]) -> bool:
    """A G state dict (either layout) with the shared class embedding."""
    return "shared.weight" in G_sd


def rename_from_theirs(their_sd: dict[str, Tensor], net: str) -> dict[str, Tensor]:
    """Their G or D state dict (default BN layout, see keymap.normalize_bn_layout) under our names.

    Float tensors come back as float32 (their --G_fp16 runs store float16). Tensors our layout
    has and theirs lacks (BN `num_batches_tracked`) are not filled in here.
    """
    shared = net != "G" or is_shared(their_sd)
    out: dict[str, Tensor] = {}
    for key, value in their_sd.items():
        ours = our_key(key, net)
        if ours is None:
            continue
        value = value.detach().clone()
        if value.is_floating_point():
            value = value.float()
        out[ours] = value.t().contiguous() if needs_transpose(ours, shared) else value
    return out


def rename_to_theirs(our_sd: dict[str, Tensor], net: str) -> OrderedDict[str, Tensor]:
    """Our G or D state dict under their names, in their `state_dict()` order."""
    shared = net != "G" or is_shared(our_sd)
    renamed: dict[str, Tensor] = {}
    for key, value in our_sd.items():
        theirs = their_key(key, net)
        if theirs is None:
            continue
        value = value.detach().clone()
        renamed[theirs] = value.t().contiguous() if needs_transpose(key, shared) else value
    return OrderedDict((k, renamed[k]) for k in their_order(list(renamed), net))


def fill_ours_only(our_sd: dict[str, Tensor], expected: dict[str, Tensor]) -> list[str]:
    """Add the tensors their layout lacks (BN batch counters) as zeros; returns their names.

    `expected` is a state dict of the target model (shapes and dtypes; meta tensors do).
    The counter only weights the cumulative average of standing statistics, which resets it.
    """
    added = []
    for key, ref in expected.items():
        if key not in our_sd and key.endswith("num_batches_tracked"):
            our_sd[key] = torch.zeros(ref.shape, dtype=ref.dtype)
            added.append(key)
    return added
