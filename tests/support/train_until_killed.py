"""A training process for the kill -9 resume tests: `python -m tests.support.train_until_killed
CONFIG_JSON MARKER HANG_AFTER` trains the config in-process (one thread) on the synthetic stream
of `synthetic_batches` and, when the stream is asked for batch HANG_AFTER + 1, writes MARKER and
waits there: the test then kills the process with SIGKILL mid-run, after a checkpoint it knows."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch


def synthetic_batches(hang_after: int | None = None, marker: str | None = None):
    """A deterministic function of the segment seed, like the shard loader (the in-process tests
    use the same stream); optionally hangs after `hang_after` batches."""
    served = {"n": 0}

    def make(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            served["n"] += 1
            if hang_after is not None and served["n"] > hang_after:
                Path(marker).write_text(str(served["n"]))
                time.sleep(600)  # killed here
            images = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            yield images, torch.randint(10, (micro_batch,), generator=g)

    return make


def main() -> None:
    from biggan.config import ExperimentConfig
    from biggan.train.context import LocalContext
    from biggan.train.loop import train

    config, marker, hang_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)  # as the test's own process (bit-equal arithmetic)
    cfg = ExperimentConfig.model_validate(json.loads(Path(config).read_text()))
    train(cfg, LocalContext(), real_batches_fn=synthetic_batches(hang_after, marker))


if __name__ == "__main__":
    main()
