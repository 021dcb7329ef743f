"""Durations as people read them in progress lines (training ETA, sharding ETA): one formatter
for every progress line of the package."""

from __future__ import annotations

import math


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h03m05s`; `?` when unknown (an infinite or NaN estimate)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
