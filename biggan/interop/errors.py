"""Errors the import, export and fine-tune paths raise, each one line a CLI can print as is."""

from __future__ import annotations

from biggan.errors import UserError


class InteropError(UserError, ValueError):
    """Base: weights that cannot be brought in (or taken out) as asked."""


class LayerMismatchError(InteropError):
    """The first layer whose weights do not fit the model, with both shapes.

    Raised before anything is loaded, so a caller can print `str(error)` and stop: the
    message alone says which net, which layer (and its name in the source layout when that
    differs) and what each side has.
    """

    def __init__(
        self,
        net: str,  # "G", "D" or "G_ema"
        layer: str,  # our state-dict key, in our model's order
        expected: tuple[int, ...] | None,  # the model's shape; None = the model has no such layer
        found: tuple[int, ...] | None,  # the weights' shape; None = the weights lack it
        source_name: str | None = None,  # the key in the source files when it is spelled otherwise
    ) -> None:
        self.net, self.layer, self.expected, self.found, self.source_name = net, layer, expected, found, source_name
        where = f"{net} layer {layer!r}"
        if source_name is not None and source_name != layer:
            where += f" ({source_name!r} in the source files)"
        super().__init__(f"{where}: the model has {_shape(expected)}, the weights have {_shape(found)}")


class UnsupportedCheckpointError(InteropError):
    """The files describe something our models cannot represent (e.g. two non-local blocks)."""


class UnsafePickleError(InteropError):
    """A file would need arbitrary code to load; we refuse rather than execute it."""


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "no such tensor"
    return "shape (" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
