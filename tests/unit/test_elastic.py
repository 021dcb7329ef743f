"""Elastic training's arithmetic and data order (issue 25): the global batch of a micro-step is the same
(image, label, latent) multiset, in the same order, for 1, 2 and 4 workers; a resume from a checkpoint taken
mid-segment (a preemption notice) reads what the uninterrupted streams read, at any size; the micro-batch
for each size of a range and the one-line refusal of a range that cannot split the batch."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import ConfigError, ShardConfig, apply_overrides
from biggan.config.cluster import default_streams, parse_workers, split_refusal
from biggan.data.shard import shard_dataset
from biggan.presets import digits32
from biggan.train.streams import DataStreams, StreamLatents, StreamPlan
from tests.unit._data_helpers import write_tree

STREAMS = 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("elastic")
    write_tree(root / "src", ["a", "b", "c", "d"], per_class=12)
    shard_dataset(ShardConfig(source="imagenet", root=root / "src", out=root / "out", resolution=32,
                              samples_per_shard=6))  # 8 shards: two per stream
    return root / "out"


def _cfg(shards, loader_workers: int, **extra):
    overrides = {"data.train_shards": str(shards), "data.val_shards": None, "data.streams": STREAMS,
                 "data.loader_workers": loader_workers, "data.shuffle_buffer": 10, "train.batch_size": 8,
                 "cluster.num_workers": 4, "model.num_classes": 4, "model.dim_z": 16, "model.shared_dim": 8}
    overrides.update(extra)
    return apply_overrides(digits32(), overrides)


def _ids(images: torch.Tensor) -> list[int]:
    u8 = ((images + 1) * 127.5).round().to(torch.uint8)
    return [int(x[0, 0, 0]) + 256 * int(x[1, 0, 0]) + 65536 * int(x[2, 5, 5]) for x in u8]


class _Worker:
    """One rank's streams as the loop builds them (real images from the shard loader, latents)."""

    def __init__(self, cfg, rank: int, world: int):
        self.plan = StreamPlan.of(cfg, rank, world)
        self.generators = [torch.Generator() for _ in self.plan.mine]
        self.latents = StreamLatents(16, 4, "normal", torch.device("cpu"), self.generators, self.plan.per_stream)
        self.streams = DataStreams(cfg, self.plan, self.generators, None, torch.device("cpu"))
        self.reals = None

    def micro_step(self):
        images, labels = next(self.reals)
        z, y = self.latents(self.plan.micro_batch, self.generators[0])
        return images, labels, z, y

    def close(self):
        self.reals.close()


def _global_batches(workers: list[_Worker], steps: int) -> list[tuple[torch.Tensor, ...]]:
    """Each micro-step's global batch: the workers' shares joined in rank order."""
    out = []
    for _ in range(steps):
        parts = [w.micro_step() for w in workers]
        out.append(tuple(torch.cat([p[i] for p in parts]) for i in range(4)))
    return out


def _world(cfg, world: int) -> list[_Worker]:
    return [_Worker(cfg, rank, world) for rank in range(world)]


# DataLoader processes (each stream read by 2 readers, a process reading several) are slow to start here.
WITH_PROCESSES = pytest.param(2, marks=pytest.mark.slow)


@pytest.mark.parametrize("loader_workers", [0, WITH_PROCESSES])
def test_the_global_batch_is_the_same_for_1_2_and_4_workers(shards, loader_workers):
    cfg = _cfg(shards, loader_workers)
    seen = {}
    worlds = (1, 2, 4) if loader_workers == 0 else (1, 2)
    for world in worlds:
        workers = _world(cfg, world)
        assert {w.plan.micro_batch for w in workers} == {8 // world}  # recomputed per size, global batch 8
        for w in workers:
            w.reals = w.streams.restart(6, 0)  # the segment that starts at a checkpoint at iteration 6
        try:
            seen[world] = _global_batches(workers, 7)  # past an epoch of each reader's shards (6 samples each)
        finally:
            for w in workers:
                w.close()
    for world in worlds[1:]:
        for step, (one, other) in enumerate(zip(seen[1], seen[world])):
            # The same multiset of (image, label, z, y) ...
            rows = [sorted(zip(_ids(b[0]), b[1].tolist(), [tuple(r) for r in b[2].tolist()], b[3].tolist()))
                    for b in (one, other)]
            assert rows[0] == rows[1], f"micro-step {step}: {world} workers read another global batch"
            # ... and, streams being joined in stream order, the same tensors.
            for a, b in zip(one, other):
                assert torch.equal(a, b)
    # Not a constant: every micro-step reads new images.
    assert len({tuple(_ids(b[0])) for b in seen[1]}) == 7


@pytest.mark.parametrize("loader_workers", [0, WITH_PROCESSES])
def test_a_resume_mid_segment_reads_what_the_uninterrupted_streams_read_at_any_size(shards, loader_workers):
    cfg = _cfg(shards, loader_workers)
    d_steps = cfg.train.d_steps  # micro-steps of real images per iteration (accumulation 1)
    [one] = _world(cfg, 1)
    one.reals = one.streams.restart(3, 0)  # the segment seeded at the checkpoint of iteration 3
    try:
        _global_batches([one], 2 * d_steps)  # iterations 4 and 5
        data = one.streams.checkpoint_data(5, mid_segment=True)  # a preemption checkpoint at 5: no reseed
        assert data["segment_start"] == 3 and len(data["latent_states"]) == STREAMS
        after = _global_batches([one], 2 * d_steps)  # iterations 6 and 7 of the uninterrupted run
    finally:
        one.close()
    for world in (1, 2, 4) if loader_workers == 0 else (2,):
        workers = _world(cfg, world)
        for w in workers:
            w.reals = w.streams.resume(data, 5, rollbacks=0)
        try:
            resumed = _global_batches(workers, 2 * d_steps)
        finally:
            for w in workers:
                w.close()
        for a, b in zip(after, resumed):
            for x, y in zip(a, b):
                assert torch.equal(x, y), f"{world} workers resumed at 5 read another batch"
    # A rollback since the checkpoint reseeded the streams: a resume from it starts a new segment there.
    [fresh] = _world(cfg, 1)
    fresh.reals = fresh.streams.resume(data, 5, rollbacks=1)
    try:
        assert fresh.streams.segment.start == 5 and fresh.streams.segment.rollbacks == 1
    finally:
        fresh.close()


def test_worker_counts_and_ranges_parse_to_one_form():
    assert parse_workers(4) == 4 and parse_workers("4") == 4 and parse_workers("3-3") == 3
    assert parse_workers("2-8") == "2-8" and parse_workers(" 2 - 8 ") == "2-8" and parse_workers([2, 8]) == "2-8"
    for bad, why in (("8-2", "MIN is above MAX"), ("0-2", "at least one Ray worker"), ("two", "neither"),
                     (True, "not true/false"), (-1, "negative")):
        with pytest.raises(ValueError, match=why):
            parse_workers(bad)


def test_micro_batch_is_recomputed_for_every_size_of_a_range(shards):
    cfg = _cfg(shards, 0, **{"train.batch_size": 12, "cluster.num_workers": "1-3", "data.streams": None})
    streams = default_streams(cfg.cluster.num_workers)
    assert streams == 6  # lcm(1, 2, 3)
    cfg = apply_overrides(cfg, {"data.streams": streams})
    for world, micro in ((1, 12), (2, 6), (3, 4)):
        plans = [StreamPlan.of(cfg, rank, world) for rank in range(world)]
        assert {p.micro_batch for p in plans} == {micro} and {p.per_stream for p in plans} == {2}
        assert sorted(s for p in plans for s in p.mine) == list(range(6))  # every stream read once
    # With accumulation the BN batch (workers x micro-batch) stays batch / accumulation at every size.
    cfg = apply_overrides(cfg, {"train.accumulation": 2})
    assert [StreamPlan.of(cfg, 0, w).micro_batch * w for w in (1, 2, 3)] == [6, 6, 6]


def test_a_range_that_cannot_split_the_batch_is_refused_listing_the_sizes_that_can(shards):
    why = split_refusal(16, 1, "1-3", None)
    assert why is not None and "cannot be split evenly over 3 workers" in why
    assert "worker counts that divide it: 1, 2, 4, 8, 16" in why and "divisible by 6" in why
    with pytest.raises(ConfigError, match="cannot be split evenly over 3 workers"):
        _cfg(shards, 0, **{"train.batch_size": 16, "cluster.num_workers": "1-3", "data.streams": None})
    # Streams fixed when the run started bind every later range.
    assert "data.streams 2 cannot be shared out evenly over 3 workers" in split_refusal(12, 1, "2-3", 2)
    assert split_refusal(12, 1, "1-3", 6) is None and split_refusal(15, 1, 3, None) is None
    assert "not divisible by cluster.num_workers (2)" in split_refusal(15, 1, 2, None)  # a fixed size, as before


def test_cli_takes_a_range_and_refuses_one_that_cannot_split_the_batch_in_one_line(digits_shards, tmp_path):
    shard_root = str(digits_shards["train"].parent)
    ok = CliRunner().invoke(main, ["train", "--shards", shard_root, "--store", str(tmp_path), "--workers", "1-2",
                                   "--dry-run"])
    assert ok.exit_code == 0, ok.output
    assert '"num_workers": "1-2"' in ok.output and '"streams": 2' in ok.output
    bad = CliRunner().invoke(main, ["train", "--shards", shard_root, "--store", str(tmp_path), "--workers", "1-3",
                                    "--dry-run"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    error = [line for line in bad.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "1, 2, 4, 8, 16" in error[0], bad.output
    odd = CliRunner().invoke(main, ["train", "--shards", shard_root, "--store", str(tmp_path), "--workers", "3-1"])
    assert odd.exit_code == 2 and "--workers 3-1: range 3-1: MIN is above MAX" in odd.output


def test_an_elastic_run_tells_rays_controller_a_short_start_timeout(monkeypatch):
    """After a node goes, Ray's elastic policy may ask for the old size from a node view up to 20 s stale and
    wait out the whole start timeout for it (60 s by default): an elastic run shortens that wait."""
    from biggan.train.launcher.trainer import START_TIMEOUT_ENV, controller_env

    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    elastic = apply_overrides(digits32(), {"cluster.num_workers": "1-2", "cluster.start_timeout_s": 7.5})
    assert controller_env(elastic) == {START_TIMEOUT_ENV: "7.5"}
    assert controller_env(apply_overrides(digits32(), {"cluster.num_workers": 2})) == {}  # Ray's own 60 s
    monkeypatch.setenv(START_TIMEOUT_ENV, "30")  # the user's explicit setting wins
    assert controller_env(elastic) == {}
