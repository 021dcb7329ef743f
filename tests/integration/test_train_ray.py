"""Ray Train for real: 2 gloo workers; a worker process that dies mid-run is restarted by
FailureConfig from the latest checkpoint and ends with the same weights as a run that never
failed (fixed seeds, CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from biggan.train import checkpoint as ckpt
from biggan.train.launcher import FAIL_ONCE_ENV, experiment_from_params, launch_training
from biggan.train.monitor import read_stats


def _cfg(digits_shards, tmp_path, name):
    return experiment_from_params("digits32", {
        "run_root": str(tmp_path / "runs"), "name": name, "train.iterations": 4, "train.batch_size": 8,
        "train.log_every": 1, "train.checkpoint_every": 1, "model.ch": 8, "train.ema_start": 1,
        "train.keep_checkpoints": 1, "train.best_metric": None, "train.sample_every": 4,
        "train.standing_stats_batches": 1, "data.shuffle_buffer": 50, "cluster.max_failures": 1,
    }, str(digits_shards["train"]), num_workers=2, use_gpu=False)


@pytest.mark.slow
def test_killed_worker_resumes_and_matches_uninterrupted(ray_cluster, digits_shards, tmp_path, monkeypatch):
    straight = launch_training(_cfg(digits_shards, tmp_path, "straight"))
    assert straight.checkpoint is not None and straight.checkpoint.name == "checkpoint_00000004"

    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, "3")  # rank 0 exits hard at iteration 3, after checkpoint 2 (1 pruned)
    monkeypatch.setenv(FAIL_ONCE_ENV + "_MARKER", str(marker))
    failed = launch_training(_cfg(digits_shards, tmp_path, "failed"))
    assert marker.read_text() == "3"  # the worker really died once
    assert failed.checkpoint is not None and failed.checkpoint.name == "checkpoint_00000004"
    assert [r["iteration"] for r in read_stats(failed.run_dir / "stats.jsonl")] == [1, 2, 3, 4]
    # Our kept checkpoints were pruned to the newest; Ray kept only its newest resume copy and
    # resumed although checkpoint_00000001 was deleted.
    assert [c.iteration for c in ckpt.list_checkpoints(failed.run_dir)] == [4]
    assert sorted(p.name for p in failed.run_dir.glob("ray_checkpoint_*")) == ["ray_checkpoint_00000004"]

    a, b = ckpt.load_state(straight.checkpoint), ckpt.load_state(failed.checkpoint)
    for net in ("G", "D", "G_ema"):
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name} differs after the restart"
    assert json.loads((failed.run_dir / "options.json").read_text())["name"] == "failed"
