"""The evaluation flows on the session's Prefect server: scheduled evaluation is idempotent,
truncation-curve and memorization-check write their files."""

from __future__ import annotations

import json

import pytest
import torch

from biggan.runs import RunStore
from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config


@pytest.fixture(scope="module")
def tiny_run(digits_shards, tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("runs"), digits_shards)
    save_tiny_checkpoint(cfg, 100, seed=1)
    save_tiny_checkpoint(cfg, 200, seed=2)
    return cfg


@pytest.mark.slow
def test_scheduled_evaluation_skips_evaluated_checkpoints(prefect_harness, tiny_run):
    from biggan_flows.evaluate import evaluate_biggan_flow

    torch.set_num_threads(1)
    run = tiny_run.run_uri
    first = evaluate_biggan_flow(run=run, eval_overrides={"num_samples": 30})
    assert first["evaluated"] == ["checkpoint_00000100", "checkpoint_00000200"]
    for record in first["records"]:
        assert record["metrics"]["FID"] > 0 and record["num_samples"] == 30
    # Two differently initialised generators score differently: the figures are real.
    assert first["records"][0]["metrics"]["FID"] != first["records"][1]["metrics"]["FID"]
    second = evaluate_biggan_flow(run=run, eval_overrides={"num_samples": 30})
    assert second["evaluated"] == []
    for metric in ("is", "fid"):
        lines = RunStore(run).evaluations.history(metric).loc.read_text().splitlines()
        assert [json.loads(line)["iteration"] for line in lines] == [100, 200]
    assert RunStore(run).file("metrics_history.png").size() > 0
    # A new checkpoint is picked up by the next scheduled run, and only it.
    save_tiny_checkpoint(tiny_run, 300, seed=3)
    third = evaluate_biggan_flow(run=run, eval_overrides={"num_samples": 30})
    assert third["evaluated"] == ["checkpoint_00000300"]


@pytest.mark.slow
def test_truncation_and_memorization_flows(prefect_harness, tiny_run):
    from biggan_flows.evaluate import memorization_flow, truncation_curve_flow

    torch.set_num_threads(1)
    run = tiny_run.run_uri
    curve = truncation_curve_flow(run=run, eval_overrides={"num_samples": 30})
    assert curve["checkpoint"] == RunStore(run).checkpoint_to_evaluate().name
    assert [row["threshold"] for row in curve["rows"]] == [None, 1.0, 0.5]  # None: the untruncated point
    assert curve["operating_points"]["val_is"] > 1.0
    assert RunStore(run).file("truncation", "curve.png").is_file()
    memo = memorization_flow(run=run, eval_overrides={"d_accuracy_samples": 50})
    assert RunStore(run).file("memorization", "summary.json").is_file()
    assert memo["d_accuracy"]["train_real"]["count"] == memo["d_accuracy"]["val_real"]["count"] == 50


@pytest.mark.slow
def test_scheduled_evaluation_of_a_run_that_does_not_exist_yet_is_a_no_op(prefect_harness, tmp_path):
    from biggan_flows.evaluate import evaluate_biggan_flow

    result = evaluate_biggan_flow(run=str(tmp_path / "runs" / "not-yet"))
    assert result["evaluated"] == [] and result["plot"] is None
    # What the scheduled deployment evaluates (prefect.yaml): the newest run of a store with none yet.
    scheduled = evaluate_biggan_flow(run="latest", store=str(tmp_path / "empty-store"))
    assert scheduled["evaluated"] == [] and scheduled["plot"] is None
