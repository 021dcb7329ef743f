"""The `biggan` command line. Each area registers its commands from its own module;
commands that run a flow import it inside the command, so `import biggan` stays Prefect-free."""

from __future__ import annotations

import click

# Importing the modules registers their commands on `main`.
from biggan.cli import data as _data  # noqa: F401
from biggan.cli import evaluate as _evaluate  # noqa: F401
from biggan.cli import interop as _interop  # noqa: F401
from biggan.cli import model as _model  # noqa: F401
from biggan.cli import pipeline as _pipeline  # noqa: F401
from biggan.cli import study as _study  # noqa: F401
from biggan.cli import train as _train  # noqa: F401
from biggan.cli.common import main

__all__ = ["main", "click"]
