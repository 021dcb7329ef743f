"""`biggan` commands: train."""

from biggan.cli.common import main  # noqa: F401
