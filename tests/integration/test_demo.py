"""`biggan demo`, shortened: the real command (demo data -> shards -> 2 Ray workers with
cross-replica BN -> the four downstream nodes) with fewer checkpoints and samples, on the
session's Prefect and Ray. It must meet the demo bar docs/benchmarks.md states
(biggan.eval.agreement.DEMO_BAR): an independent judge sees the conditioned class in >= 90% of
the samples on average and >= 75% in the worst class, FID drops >= 5x from the untrained G, and
the nearest-neighbour check flags no copying. Only the bar's wall time is left out (a timing)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from biggan.eval.agreement import DEMO_BAR

SHORT = {
    # digits32's own 1,000 iterations and seed, with fewer checkpoints, samples and thresholds.
    "train.iterations": 1000,
    "train.checkpoint_every": 500,
    "eval.num_samples": 1000,
    "eval.thresholds": [1.0, 0.5],
}
CHANCE = 0.1


@pytest.mark.slow
def test_shortened_demo_meets_the_demo_bar(prefect_harness, ray_cluster, tmp_path):
    from biggan.cli import main

    args = ["demo", "--data", str(tmp_path / "demo"), "--shards", str(tmp_path / "shards"),
            "--store", str(tmp_path / "runs")]
    for key, value in SHORT.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)

    run_dir = tmp_path / "runs" / "00000-digits32"  # a new store numbers its first run 00000
    quality = json.loads((run_dir / "quality.json").read_text())
    agreement = quality["agreement"]
    assert quality["iteration"] == SHORT["train.iterations"]
    assert agreement["chance"] == CHANCE and len(agreement["per_class"]) == 10
    assert quality["bar"] == DEMO_BAR
    assert agreement["mean"] >= DEMO_BAR["mean_agreement"], agreement
    assert agreement["min"] >= DEMO_BAR["min_class_agreement"], agreement
    assert quality["fid_drop"] >= DEMO_BAR["fid_drop"], quality
    assert all(quality["passes"].values()), quality["passes"]
    memorization = json.loads((run_dir / "memorization" / "summary.json").read_text())
    assert memorization["copying_flag"] is False, memorization["backbones"]
    assert set(memorization["backbones"]) == {"pixel", "efficientnet-lite0"}  # both feature spaces checked
    # The summary a user reads names the run, the numbers and the verdict.
    for needle in (str(run_dir.resolve()), "class agreement", "FID drop", "wall time", "demo bar",
                   "copying flag       False"):
        assert needle in result.output
