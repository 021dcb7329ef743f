"""`biggan` commands: evaluate."""

from biggan.cli.common import main  # noqa: F401
