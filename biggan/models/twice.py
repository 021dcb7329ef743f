"""A switch the models read: build a graph that can be differentiated twice (R1, Section 4.2).

The R1 penalty of eq. 5 is the squared norm of D's gradient with respect to its real input,
and its own gradient with respect to D's weights differentiates that gradient again. Two pieces
of the networks have hand-written backwards that are fast but not differentiable themselves:
the attention core (biggan.models.attention) and the fused BN affine (biggan.models.bn_affine).
Both are marked `once_differentiable`, so a second derivative through them raises instead of
coming out silently wrong, and both fall back to plain torch ops inside `differentiable_twice()`.
R1's D pass runs inside it (biggan.train.losses.r1_penalty); nothing else does, so the training
step keeps the fast pieces everywhere else.

A context variable, not a module attribute: evaluation nodes run networks in threads of one
process, and one thread's R1 pass must not switch another thread's networks.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_TWICE: contextvars.ContextVar[bool] = contextvars.ContextVar("biggan_differentiable_twice", default=False)


def building_twice_differentiable() -> bool:
    """True inside `differentiable_twice()`: custom autograd pieces must use plain ops."""
    return _TWICE.get()


@contextlib.contextmanager
def differentiable_twice() -> Iterator[None]:
    """Within the block, the models build graphs whose backward can be differentiated again."""
    token = _TWICE.set(True)
    try:
        yield
    finally:
        _TWICE.reset(token)
