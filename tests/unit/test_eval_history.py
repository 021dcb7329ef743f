"""Scheduled-evaluation bookkeeping: unevaluated checkpoints, history append, plot; idempotent."""

from __future__ import annotations

from biggan.eval.history import append_history, plot_history, read_history, unevaluated_checkpoints


def test_history_tracks_evaluated_checkpoints(digits_shards, tmp_path):
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    cfg = tiny_config(tmp_path / "runs", digits_shards)
    first = save_tiny_checkpoint(cfg, 100)
    second = save_tiny_checkpoint(cfg, 200)
    assert unevaluated_checkpoints(cfg.run_dir) == [first, second]
    append_history(cfg.run_dir, {"checkpoint": first.name, "iteration": 100, "metrics": {"FID": 9.0, "IS": 2.0}})
    assert unevaluated_checkpoints(cfg.run_dir) == [second]
    append_history(cfg.run_dir, {"checkpoint": second.name, "iteration": 200, "metrics": {"FID": 7.0, "IS": 3.0}})
    assert unevaluated_checkpoints(cfg.run_dir) == []
    # A torn last line (crash mid-append) is ignored, not fatal.
    with open(cfg.run_dir / "metrics_history.jsonl", "a") as handle:
        handle.write('{"checkpoint": "chec')
    assert [r["iteration"] for r in read_history(cfg.run_dir)] == [100, 200]
    append_history(cfg.run_dir, {"checkpoint": "checkpoint_00000300", "iteration": 300, "metrics": {"FID": 6.0}})
    assert [r["iteration"] for r in read_history(cfg.run_dir)] == [100, 200, 300]
    assert plot_history(cfg.run_dir).stat().st_size > 0
