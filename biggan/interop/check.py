"""Does a state dict fit a model? The first layer that does not, named with both shapes."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from biggan.interop.errors import LayerMismatchError


def shapes(model_or_sd: nn.Module | dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    """{key: shape} in the model's own order (meta-device models work: shapes only)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    return {k: tuple(v.shape) for k, v in sd.items()}


def first_mismatch(
    net: str,
    expected: dict[str, tuple[int, ...]],  # the model's {key: shape}, in its order
    sd: dict[str, Tensor],  # the weights to load (our names)
    source_name: Callable[[str], str | None] = lambda key: None,  # the key in the source files
) -> LayerMismatchError | None:
    """The first of the model's layers the weights lack or shape otherwise, then any extra one."""
    for key, shape in expected.items():
        if key not in sd or tuple(sd[key].shape) != shape:
            found = tuple(sd[key].shape) if key in sd else None
            return LayerMismatchError(net, key, shape, found, source_name(key))
    for key, value in sd.items():
        if key not in expected:
            return LayerMismatchError(net, key, None, tuple(value.shape), source_name(key))
    return None


def check_fits(net: str, model: nn.Module, sd: dict[str, Tensor],
               source_name: Callable[[str], str | None] = lambda key: None) -> None:
    """Raise LayerMismatchError unless `sd` loads into `model` strictly."""
    error = first_mismatch(net, shapes(model), sd, source_name)
    if error is not None:
        raise error
