"""Scheduled-evaluation bookkeeping: unevaluated checkpoints, history append, plot; idempotent."""

from __future__ import annotations

from biggan.eval.history import plot_history, unevaluated_checkpoints
from biggan.runs import RunStore


def test_history_tracks_evaluated_checkpoints(digits_shards, tmp_path):
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    cfg = tiny_config(tmp_path / "runs", digits_shards)
    first = save_tiny_checkpoint(cfg, 100)
    second = save_tiny_checkpoint(cfg, 200)
    store = RunStore(cfg.run_uri)
    assert [c.name for c in unevaluated_checkpoints(store)] == [first.name, second.name]
    store.history.append({"checkpoint": first.name, "iteration": 100, "metrics": {"FID": 9.0, "IS": 2.0}})
    assert [c.name for c in unevaluated_checkpoints(store)] == [second.name]
    store.history.append({"checkpoint": second.name, "iteration": 200, "metrics": {"FID": 7.0, "IS": 3.0}})
    assert unevaluated_checkpoints(store) == []
    assert plot_history(store).size() > 0
