"""`biggan` commands: data."""

from biggan.cli.common import main  # noqa: F401
