"""Session-wide harnesses: one Prefect test server, one local Ray, one tiny digits shard set.

Starting Prefect's temporary server (~25 s) or a Ray cluster (~5 s + ~20 s per trainer) per
test would blow the CI budget, so each is started once per session and shared.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Must be set before prefect is imported anywhere in the session.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="biggan-prefect-home-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Ray 2.60 turns token auth on for local clusters; tests talk to their own loopback cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
os.environ.pop("PREFECT_API_URL", None)
# Evaluation caches (dataset classifiers, reference statistics) stay inside the session.
os.environ.setdefault("BIGGAN_CACHE", tempfile.mkdtemp(prefix="biggan-cache-"))


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny models: threads only add dispatch overhead and
    make timings of two in-process workers interfere), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server for the whole session (flows run against it)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the session; launchers reuse it when it is initialised."""
    import ray

    from biggan.train.launcher.local_ray import start_local_ray

    if not ray.is_initialized():
        # Logical CPUs above the 2 physical cores so a 2-worker trainer plus its controller
        # and a shard task never wait on each other for scheduling. Bound to loopback like the
        # Ray that biggan starts for a user.
        start_local_ray(num_cpus=4, include_dashboard=False, object_store_memory=200 * 2**20,
                        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The embedded digits written as an ImageNet-style tree and a JFT-style manifest."""
    from biggan.data.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo-data"))


@pytest.fixture(scope="session")
def digits_shards(demo_data, tmp_path_factory):
    """Train and val shard sets of the digits at 32 px: {"train": Path, "val": Path}."""
    from biggan.config import ShardConfig
    from biggan.data.shard import shard_dataset

    root = tmp_path_factory.mktemp("digits-shards")
    out = {}
    for split in ("train", "val"):
        cfg = ShardConfig(source="imagenet", root=demo_data.imagenet_root, split=split,
                          out=root / split, resolution=32, samples_per_shard=200)
        shard_dataset(cfg)
        out[split] = root / split
    return out
