"""A train-biggan flow run whose run watcher keeps failing: training finishes, the watcher gives
up after its bound instead of warning forever, and the flow run's state says so (a Completed state
named Degraded whose message is the watcher's failure), as does the flow's result."""

from __future__ import annotations

import asyncio

import pytest

TINY = {"train.iterations": 2, "train.checkpoint_every": 1, "train.log_every": 1, "train.batch_size": 4,
        "model.ch": 4, "train.standing_stats_batches": 1, "train.sample_every": 1, "data.shuffle_buffer": 20}


@pytest.mark.slow
def test_a_failing_watcher_is_surfaced_in_the_flow_run_state(prefect_harness, digits_shards, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    import biggan_flows.watch
    from biggan_flows.train import DEGRADED, train_biggan_flow

    def unreachable(self):
        raise OSError("the store does not answer")

    # The watcher's reads of the run store fail (training's own reads are untouched).
    monkeypatch.setattr(biggan_flows.watch.RunWatcher, "_poll_checkpoints", unreachable)
    monkeypatch.setattr(biggan_flows.watch, "POLL_S", 0.01)
    state = train_biggan_flow(overrides=TINY, shards=str(digits_shards["train"]), num_workers=0, name="watched",
                              store=str(tmp_path / "runs"), return_state=True)
    assert state.is_completed() and state.name == DEGRADED
    assert "run watcher of watched gave up" in state.message and "OSError: the store does not answer" in state.message
    result = state.result()
    assert result["watcher_error"] == state.message and result["checkpoint"].endswith("checkpoint_00000002")

    async def stored_state():
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).state

    stored = asyncio.run(stored_state())  # what the UI and automations see
    assert (stored.type.value, stored.name, stored.message) == ("COMPLETED", DEGRADED, state.message)
