"""What several benchmarks set up the same way: the demo digits sharded in a work folder, and a
run holding one checkpoint of randomly initialised networks (memory and speed of the evaluation
nodes do not depend on what G learned), and a free port. Imported by the scripts next to it."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now. The tests' copy is tests/support/sockets.free_port: a
    script here runs with benchmarks/ on sys.path, not the repository root, so tests/ is out of reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_shards(work: Path, resolution: int = 32, samples_per_shard: int = 200) -> Path:
    """WORK/shards/{train,val} of the embedded digits (written once, reused after)."""
    from biggan.config import ShardConfig
    from biggan.data.demo import write_demo_data
    from biggan.data.shard import shard_dataset

    shards = work / "shards"
    if not (shards / "val" / "dataset.json").is_file():
        demo = write_demo_data(work / "demo")
        for split in ("train", "val"):
            shard_dataset(ShardConfig(source="imagenet", root=demo.imagenet_root, split=split,
                                      out=shards / split, resolution=resolution,
                                      samples_per_shard=samples_per_shard))
    return shards


def random_weights_run(cfg) -> None:
    """The run of `cfg` (an ExperimentConfig) with its options and one checkpoint (iteration 1) of
    G and D as seed 0 initialises them, G_ema = G."""

    from biggan.models import build_models, seeded
    from biggan.runs import RunStore

    G, D = build_models(cfg.model, seeded(0))
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    store.save_checkpoint({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(), "opt_G": {},
                           "opt_D": {}, "iteration": 1, "rng": {}, "data": {},
                           "config": cfg.model_dump(mode="json")}, {})
