"""The run store's user errors: one line each, never a traceback (biggan.errors.UserError)."""

from __future__ import annotations

from biggan.errors import UserError


class RunNotFound(UserError, FileNotFoundError):
    """No run at a location (one line for the user)."""


class NoCheckpointBeforeCollapse(RunNotFound):
    """A collapsed (or stopped) run saved no intact checkpoint before the collapse began: there
    is nothing it may be scored or started from (one line for the user)."""
