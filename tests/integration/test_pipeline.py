"""The `pipeline` flow end to end on a tiny digits run: shard -> train (2 Ray workers) ->
{evaluate, truncation curve, memorization} in parallel, on the session's Prefect and Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

TINY = {
    "model.ch": 8,
    "model.dim_z": 16,
    "model.shared_dim": 8,
    "train.iterations": 4,
    "train.batch_size": 16,
    "train.checkpoint_every": 2,
    "train.log_every": 1,
    "train.ema_start": 0,
    "train.standing_stats_batches": 2,
    "eval.num_samples": 40,
    "eval.batch_size": 20,
    "eval.thresholds": [1.0, 0.5],
    "eval.classifier_epochs": 1,
    "eval.nn_backbone": "pixel",
    "eval.nn_queries_per_class": 2,
    "eval.nn_neighbours": 3,
}


@pytest.mark.slow
def test_pipeline_end_to_end(prefect_harness, ray_cluster, demo_data, tmp_path):
    from biggan_flows.pipeline import pipeline_flow

    torch.set_num_threads(1)
    summary = pipeline_flow(preset="digits32", overrides=TINY, root=str(demo_data.imagenet_root),
                            shards=str(tmp_path / "shards"), num_workers=2, samples_per_shard=200,
                            name="tiny-pipeline", store=str(tmp_path / "runs"))
    run_dir = Path(summary["run"])
    assert run_dir == (tmp_path / "runs" / "tiny-pipeline").resolve()
    assert (tmp_path / "shards" / "train" / "dataset.json").is_file()
    assert (tmp_path / "shards" / "val" / "dataset.json").is_file()
    # evaluate node: every checkpoint scored once, history plot drawn
    history = [json.loads(line) for line in (run_dir / "metric-fid.jsonl").read_text().splitlines()]
    from biggan.runs import RunStore

    assert sorted(r["checkpoint"] for r in history) == [c.name for c in RunStore(str(run_dir)).checkpoints()]
    assert summary["metrics"]["FID"] > 0 and summary["metrics"]["IS"] >= 1.0
    assert Path(summary["metrics_plot"]).is_file()
    # truncation node
    assert Path(summary["truncation_plot"]).is_file() and Path(summary["truncation_table"]).is_file()
    assert summary["operating_points"]["best_fid"]["threshold"] in (None, 1.0, 0.5)  # None: untruncated
    # memorization node: the summary carries the node's own figures
    assert all(Path(p).is_file() for p in summary["nn_grids"])
    memo = json.loads((run_dir / "memorization" / "summary.json").read_text())
    assert summary["d_accuracy"]["train"] == memo["d_accuracy"]["train_real"]["accuracy"]
    assert summary["d_accuracy"]["val"] == memo["d_accuracy"]["val_real"]["accuracy"]
    assert summary["copying_flag"] is memo["copying_flag"]
