"""Reporting: every module of the package logs under the `biggan` logger hierarchy
(`biggan.train`, `biggan.runs`, ...) and never prints. INFO is progress (a log tick, a resume),
WARNING a fallback or a damaged file the run survives, ERROR a failure.

Where the records go is the entry point's choice, not the library's:
- the `biggan` command line and every Ray Train worker call `log_to_console()` (plain lines on
  stderr; Ray streams a worker's stderr to the driver, so rank 0's progress lines reach it);
- Prefect flow runs pick them up with `PREFECT_LOGGING_EXTRA_LOGGERS=biggan` (biggan/cli/prefect_env.py
  and prefect.yaml set it), which attaches Prefect's API handler to the `biggan` logger;
- anywhere else (a notebook, a test) they propagate to the root logger as usual.
"""

from __future__ import annotations

import logging
import sys

ROOT = "biggan"


class _PlainFormatter(logging.Formatter):
    """The message alone for progress; `warning: ` / `error: ` in front of anything worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (click's test runner and pytest
    swap it), as logging's own last-resort handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_PlainFormatter("%(message)s"))

    @property
    def stream(self):  # looked up at emit time
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # StreamHandler.__init__ assigns one; the property always answers sys.stderr


def log_to_console(level: int = logging.INFO) -> logging.Handler:
    """Print the `biggan` hierarchy's records at `level` and above as plain lines on stderr.
    Idempotent. The records stop at this logger (no propagation): a console handler on the root
    (Prefect installs one) would print every line twice; handlers attached to `biggan` itself,
    such as Prefect's API handler, still get them."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    logger.propagate = False
    for handler in logger.handlers:
        if isinstance(handler, _CurrentStderr):
            return handler
    handler = _CurrentStderr()
    logger.addHandler(handler)
    return handler
