"""The `biggan` console script: the click group, with a user's errors as one line.

An error the user can fix (a bad path, bad data, a bad setting, a damaged file: `UserError`)
or any other failure ends the command with one `Error: ...` line; the traceback goes to the
command's log file (its path is printed), and to the terminal only with `--debug`. Prefect's
console logs keep their messages but not their tracebacks (the log file keeps those).

The package reports through the `biggan` logger hierarchy and never prints; this entry point
shows its records (progress at INFO, warnings, errors) as plain lines on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

import click

LOG_DIR_ENV = "BIGGAN_LOG_DIR"
TRAINING_COMMANDS = ("train", "demo", "pipeline", "study")  # the commands that may train in this process


def log_path(command: str) -> Path:
    root = os.environ.get(LOG_DIR_ENV) or os.path.join(os.environ.get("BIGGAN_CACHE") or Path.home() / ".cache" /
                                                      "biggan", "logs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root).expanduser() / f"{command}-{stamp}-{os.getpid()}.log"


class _NoTraceback(logging.Formatter):
    """A console formatter without exception text: it formats the record with the handler's own
    formatter (Prefect's flow/task-run formats kept) while hiding the traceback, which another
    handler may already have rendered into the record."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def quiet_tracebacks(log_file: Path) -> None:
    """After Prefect configured logging: its console handlers drop tracebacks; a file handler
    on the same loggers keeps everything."""
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s | %(message)s"))
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        consoles = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                    and not isinstance(h, logging.FileHandler)]
        for handler in consoles:
            if not isinstance(handler.formatter, _NoTraceback):
                handler.setFormatter(_NoTraceback(handler.formatter or logging.Formatter()))
        if consoles and file_handler not in logger.handlers:
            logger.addHandler(file_handler)


def run() -> None:
    """Entry point of the `biggan` script."""
    from biggan.cli import main, reaper
    from biggan.logs import log_to_console

    log_to_console()
    debug = "--debug" in sys.argv[1:]
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), "biggan")
    log_file = log_path(command)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    os.environ["BIGGAN_LOG_FILE"] = str(log_file)
    if debug:
        os.environ["BIGGAN_DEBUG"] = "1"
    if os.environ.get("BIGGAN_NO_REAPER") != "1":
        reaper.start()
    if command in TRAINING_COMMANDS:
        # Process-wide malloc thresholds, set here in the main thread before any flow starts its task
        # threads (biggan.train.allocator: glibc would unmap every freed activation; the step's time and
        # memory figures are measured with them). Commands that do not train keep glibc's defaults.
        from biggan.train.allocator import keep_freed_memory

        keep_freed_memory()
    try:
        main.main(args=argv, prog_name="biggan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except BaseException as err:
        if isinstance(err, (SystemExit, KeyboardInterrupt)):
            raise
        with open(log_file, "a") as handle:
            traceback.print_exception(err, file=handle)
        if debug:
            traceback.print_exception(err)
        cause = user_error(err)
        first = str(err).splitlines()[0] if str(err) else ""
        message = str(cause) if cause is not None else f"{type(err).__name__}: {first}"
        click.echo(f"Error: {message}", err=True)
        if cause is None or debug:
            click.echo(f"(full log: {log_file})", err=True)
        sys.exit(1)


def user_error(err: BaseException):
    """The UserError behind `err` (Ray and Prefect wrap worker and task exceptions), if any."""
    from biggan.errors import UserError

    seen: set[int] = set()
    todo = [err]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, UserError):
            return item
        todo += [getattr(item, "__cause__", None), getattr(item, "__context__", None), getattr(item, "cause", None),
                 getattr(item, "controller_failure", None), *getattr(item, "worker_failures", {}).values()]
    return None
