"""`biggan` commands: model."""

from biggan.cli.common import main  # noqa: F401
