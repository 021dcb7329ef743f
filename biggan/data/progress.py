"""Progress of a shard run in images: done / total, rate and ETA, one line per finished shard."""

from __future__ import annotations

import threading
import time

from biggan.timefmt import duration


class ProgressLog:
    """Thread-safe counter; `update` returns the line to log (shard writers finish out of order)."""

    def __init__(self, total_images: int, total_shards: int):
        self.total_images = total_images  # sources planned (written + skipped when done)
        self.total_shards = total_shards
        self.images = 0
        self.shards = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def update(self, images: int, shard_name: str = "", reused: bool = False) -> str:
        with self._lock:
            self.images += images
            self.shards += 1
            elapsed = max(time.monotonic() - self.start, 1e-9)
            rate = self.images / elapsed
            left = self.total_images - self.images
            eta = duration(left / rate) if rate > 0 else "?"
            pct = 100.0 * self.images / max(self.total_images, 1)
            how = " (verified, kept)" if reused else ""
            return (f"shard {self.shards}/{self.total_shards} {shard_name}{how}: "
                    f"{self.images}/{self.total_images} images ({pct:.1f}%), "
                    f"{rate:.0f} img/s, ETA {eta}")
