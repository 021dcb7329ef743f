"""Environment a command sets before it imports Prefect to run a flow."""

from __future__ import annotations

import os


def prepare_prefect() -> None:
    # Prefect's temporary server takes 15-25 s to start on a small machine; its 20 s default times out.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # Offline machines: the temporary server's telemetry call only fails and logs an error.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
