"""The evaluate node's bookkeeping: per-metric histories, pending checkpoints, leases and the
watch that keeps pruning away from unscored checkpoints; idempotent scoring."""

from __future__ import annotations

import pytest
import torch

from biggan.eval.history import pending_checkpoints, plot_history, score_checkpoint
from biggan.runs import RunStore
from biggan.sampling.device import resolve_device


def test_scoring_records_each_metric_once_and_is_idempotent(digits_shards, tmp_path):
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path / "runs", digits_shards)
    first = save_tiny_checkpoint(cfg, 100)
    second = save_tiny_checkpoint(cfg, 200)
    store = RunStore(cfg.run_uri)
    assert [c.name for c in pending_checkpoints(store, ["is", "fid"], None)] == [first.name, second.name]
    record = score_checkpoint(store, first.name, cfg.eval, None)
    assert record["scored"] == ["is", "fid"] and record["metrics"]["FID"] > 0 and record["metrics"]["IS"] >= 1.0
    assert [c.name for c in pending_checkpoints(store, ["is", "fid"], None)] == [second.name]
    again = score_checkpoint(store, first.name, cfg.eval, None)
    assert again["scored"] == [] and again["metrics"] == record["metrics"]  # read back, not recomputed
    assert [r["checkpoint"] for r in store.evaluations.history("fid").read()] == [first.name]
    assert store.evaluations.history("is").read()[0]["results"]["IS"] == record["metrics"]["IS"]
    # Another truncation is another setting: still pending there.
    assert [c.name for c in pending_checkpoints(store, ["fid"], 0.5)] == [first.name, second.name]
    assert store.evaluations.leased() == set()  # the lease ends with the scoring
    assert plot_history(store).size() > 0


def _state(iteration: int) -> dict:
    lin = torch.nn.Linear(2, 2)
    return {"G": lin.state_dict(), "D": {}, "G_ema": {}, "opt_G": {}, "opt_D": {}, "iteration": iteration,
            "rng": {}, "data": {}, "config": {}}


def test_pruning_keeps_unscored_and_leased_checkpoints(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_options({})
    for it in (1, 2, 3, 4, 5):
        store.save_checkpoint(_state(it), {"loss/G": float(it)})
    # No evaluator follows the run and no FID exists: the newest 1 stays (G's loss picks no "best").
    store.prune_checkpoints(keep_last=1)
    assert [c.iteration for c in store.checkpoints()] == [5]
    for it in (6, 7, 8):
        store.save_checkpoint(_state(it), {"loss/G": float(it)})
    store.evaluations.watch(["fid"], None)
    store.evaluations.record("fid", "checkpoint_00000006", 6, {"FID": 3.0}, {"truncation": None})
    with store.evaluations.lease("checkpoint_00000005"):
        store.prune_checkpoints(keep_last=1)
        # 5 is being scored; 7 is unscored; 6 is the best FID; 8 the newest.
        assert [c.iteration for c in store.checkpoints()] == [5, 6, 7, 8]
    store.evaluations.record("fid", "checkpoint_00000001", 1, {"FID": 9.0}, {"truncation": None})
    store.evaluations.record("fid", "checkpoint_00000005", 5, {"FID": 9.0}, {"truncation": None})
    store.evaluations.record("fid", "checkpoint_00000007", 7, {"FID": 9.0}, {"truncation": None})
    store.prune_checkpoints(keep_last=1)
    assert [c.iteration for c in store.checkpoints()] == [6, 8]


def test_eval_device_auto_picks_the_cpu_here_and_a_missing_gpu_is_one_clear_error():
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="eval.device = 'cuda': no CUDA GPU is visible"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:1")
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
