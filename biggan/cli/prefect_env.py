"""Environment a command sets before it imports Prefect to run a flow."""

from __future__ import annotations

import os


def prepare_prefect() -> None:
    # Prefect's temporary server takes 15-25 s to start on a small machine; its 20 s default times out.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # Offline machines: the temporary server's telemetry call only fails and logs an error.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The package's `biggan` records (progress, warnings) go to the flow and task run logs too;
    # outside a run the console handler (biggan/logs.py) has shown them already: no API warning.
    extra = [name.strip() for name in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if name.strip()]
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(extra + ["biggan"] * ("biggan" not in extra))
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    import prefect.main  # noqa: F401 - configures Prefect's logging, which the next lines adjust

    log_file = os.environ.get("BIGGAN_LOG_FILE")
    if log_file and not os.environ.get("BIGGAN_DEBUG"):  # the `biggan` script, without --debug
        from pathlib import Path

        from biggan.cli.entry import quiet_tracebacks

        quiet_tracebacks(Path(log_file))
