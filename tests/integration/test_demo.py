"""`biggan demo`, shortened: the real command (demo data -> shards -> 2 Ray workers with
cross-replica BN -> the four downstream nodes) with fewer iterations, on the session's Prefect
and Ray. The GAN has to have learned class conditioning: an independent judge must see the
conditioned class in its samples far more often than chance."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

SHORT = {
    # digits32's own 1,000 iterations, with fewer checkpoints, samples and thresholds; in tuning
    # (one process, three seeds) EMA G's agreement at 1,000 was 1.00 / 1.00 / 0.86 (chance 0.10),
    # far above the 0.5 asserted below.
    "train.iterations": 1000,
    "train.checkpoint_every": 500,
    "eval.num_samples": 1000,
    "eval.thresholds": [1.0, 0.5],
}
CHANCE = 0.1


@pytest.mark.slow
def test_shortened_demo_learns_class_conditioning(prefect_harness, ray_cluster, tmp_path):
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
    assert agreement["mean"] >= 5 * CHANCE, agreement
    assert quality["fid_drop"] >= 5.0, quality
    # The summary a user reads names the run, the numbers and the verdict.
    for needle in (str(run_dir.resolve()), "class agreement", "FID drop", "wall time", "demo bar"):
        assert needle in result.output
