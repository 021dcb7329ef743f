"""What the Prefect side shows of a rollback: the run watcher emits a `biggan.run.rolled_back`
event, logs the line, and publishes the run's stability artifact with the rollback's line and
the spectra figure inline; after the rollback, progress lines continue from where it went back."""

from __future__ import annotations

import asyncio
import logging

import pytest
import torch

from biggan.runs import RunStore


def _collapsing_run(tmp_path) -> RunStore:
    """A tiny in-process run whose segment after the checkpoint at 6 goes NaN: it rolls back once."""
    from biggan.config import apply_overrides
    from biggan.presets import digits32
    from biggan.train.context import LocalContext
    from biggan.train.loop import train

    cfg = apply_overrides(digits32(), {
        "run_root": str(tmp_path), "name": "watched-rollback", "cluster.num_workers": 0, "train.iterations": 12,
        "train.log_every": 3, "train.checkpoint_every": 3, "train.batch_size": 8, "model.ch": 8,
        "model.shared_dim": 8, "model.dim_z": 16, "model.num_classes": 10, "train.standing_stats_batches": 1,
        "train.sample_every": 10, "train.collapse.action": "rollback",
        "train.collapse.remedies": [{"train.d_r1_gamma": 1.0}]})

    def batches(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        n = 0
        while True:
            n += 1
            x = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            x = x * float("nan") if seed % 1000 == 6 and n > 2 else x
            yield x, torch.randint(10, (micro_batch,), generator=g)

    torch.set_num_threads(1)
    train(cfg, LocalContext(), real_batches_fn=batches)
    return RunStore(cfg.run_uri)


@pytest.mark.slow
def test_the_watcher_publishes_a_rollback(prefect_harness, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from biggan_flows.watch import ROLLBACK_EVENT, RunWatcher

    store = _collapsing_run(tmp_path)
    logger = logging.getLogger("test-rollback-watch")
    logger.setLevel(logging.INFO)
    lines: list[str] = []  # on the logger itself: Prefect's logging setup replaces the root's handlers

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger.addHandler(Keep())

    @flow
    def follow() -> RunWatcher:
        watcher = RunWatcher(store.uri, "watched-rollback", total=12, logger=logger, poll_s=0.0)
        watcher._rollbacks = 0  # as if it had started before the rollback
        watcher.poll()
        return watcher

    watcher = follow()
    assert watcher.failure is None
    [payload] = watcher.rollback_events
    assert (payload["collapsed_at"], payload["to_iteration"], payload["checkpoint"]) == (9, 6, "checkpoint_00000006")
    assert payload["changed"] == {"train.d_r1_gamma": [0.0, 1.0]} and "non-finite" in payload["signal"]
    said = [line for line in lines if ROLLBACK_EVENT in line]
    assert len(said) == 1 and said[0].startswith("rollback 1 at iteration 9 (collapse: non-finite")
    # Progress lines: one per stats record, the rollback's own record left out.
    assert [line.split(":")[0] for line in lines if line.startswith("iteration")] == [
        "iteration 3/12", "iteration 6/12", "iteration 9/12", "iteration 12/12"]

    async def artifact():
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["stability-watched-rollback"])))
            return found[-1].data

    markdown = asyncio.run(artifact())
    assert "back to iteration 6 (checkpoint_00000006), changed train.d_r1_gamma 0.0 -> 1.0" in markdown
    assert "data:image/png;base64," in markdown
