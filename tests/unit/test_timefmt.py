"""One duration format for every progress line (training ETA and sharding ETA alike)."""

from __future__ import annotations

import math

from biggan.data.progress import ProgressLog
from biggan.timefmt import duration
from biggan.train.monitor import progress_line


def test_durations_read_the_same_everywhere():
    assert [duration(s) for s in (0, 4.6, 65, 3725, -3)] == ["0s", "5s", "1m05s", "1h02m05s", "0s"]
    assert duration(math.inf) == duration(math.nan) == "?"
    line = progress_line(10, 100, {"loss/D": 1.0, "loss/G": 2.0}, 64.0, seconds_per_iteration=1.5)
    assert line.endswith("| ETA 2m15s")
    assert ProgressLog(total_images=10, total_shards=2).update(0, "a").endswith("ETA ?")  # no rate yet
