"""A run on a real two-node Ray cluster with shards and run on a real S3 server (SeaweedFS).

- `biggan shard ... --out s3://...` writes the shard sets to S3 (byte-identical to local ones).
- `biggan train --store s3://... --shards s3://...` trains with one worker on each node
  (STRICT_SPREAD) and cross-replica BN across them; the Train worker on the second node is
  SIGKILLed mid-run and Ray restarts the group from the last checkpoint in S3.
- The same run trained into a local folder, uninterrupted, ends with bit-identical weights.
- With no local copy of the S3 run anywhere, `biggan evaluate`, `truncation-curve` and
  `memorization` run from its s3:// URI alone and give the local run's figures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.data.info import load_dataset_info
from biggan.runs import RunStore
from tests.support.ray_nodes import two_node_cluster
from tests.support.seaweedfs import seaweed_s3

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["--workers", "2", "--set", "train.iterations=24", "--set", "train.checkpoint_every=4",
         "--set", "train.log_every=2", "--set", "train.batch_size=8", "--set", "model.ch=8",
         "--set", "train.ema_start=1", "--set", "train.keep_checkpoints=2", "--set", "train.sample_every=6",
         "--set", "train.standing_stats_batches=1", "--set", "data.shuffle_buffer=50",
         "--set", "cluster.max_failures=1", "--set", "cluster.placement_strategy=STRICT_SPREAD"]
EVAL = ["--set", "num_samples=200", "--set", "batch_size=50", "--set", "classifier_epochs=1",
        "--set", "thresholds=[1.0, 0.5]", "--set", "nn_backbone=pixel", "--set", "nn_queries_per_class=2",
        "--set", "d_accuracy_samples=100", "--set", "standing_passes=2"]
KILL_AFTER = "checkpoint_00000008"


def _train(args: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "biggan.cli", "train", *args, *TRAIN], cwd=ROOT, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-5000:]
    return text


def _evaluate(run: str, cache: Path) -> dict:
    """The three evaluation commands on a run, in this process (the session's Prefect server)."""
    figures = {}
    for command in ("evaluate", "truncation-curve", "memorization"):
        result = CliRunner().invoke(main, [command, "--run", run, *EVAL, "--set", f"cache_dir={cache}"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        figures[command] = json.loads(result.output[result.output.index("{"):])
    return figures


@pytest.mark.slow
def test_two_node_run_on_s3_resumes_after_a_killed_worker_and_evaluates_from_its_uri(
        prefect_harness, demo_data, digits_shards, tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    local_shards = Path(digits_shards["train"]).parent
    with seaweed_s3(tmp_path / "s3") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)  # pyarrow here, the Ray nodes and the drivers take them
        for split in ("train", "val"):
            result = CliRunner().invoke(main, ["shard", "imagenet", "--root", str(demo_data.imagenet_root),
                                               "--split", split, "--out", s3.uri(f"shards/{split}"),
                                               "--resolution", "32", "--samples-per-shard", "200"])
            assert result.exit_code == 0, result.output + repr(result.exception)
            assert load_dataset_info(s3.uri(f"shards/{split}")).shards == load_dataset_info(local_shards / split).shards

        with two_node_cluster(tmp_path / "cluster", cpus_per_node=2) as cluster:
            env = cluster.driver_env()
            env.update(PYTHONPATH=str(ROOT), PREFECT_API_URL=str(PREFECT_API_URL.value()))
            s3_run = s3.uri("runs/s3run")
            killed = tmp_path / "killed.json"
            killer = subprocess.Popen([sys.executable, "-m", "tests.support.kill_worker", cluster.worker_node_id,
                                       s3_run, KILL_AFTER, str(killed)], cwd=ROOT, env=env,
                                      start_new_session=True)
            try:
                s3_log = _train(["--store", s3.uri("runs"), "--name", "s3run", "--shards", s3.uri("shards")],
                                env, tmp_path / "s3-train.log")
                killer.wait(timeout=60)
            finally:
                if killer.poll() is None:
                    os.killpg(killer.pid, signal.SIGKILL)
            _train(["--store", str(tmp_path / "runs"), "--name", "localrun", "--shards", str(local_shards)],
                   env, tmp_path / "local-train.log")

        # The worker on the second node died, and the group came back from a checkpoint in S3.
        assert "pid" in json.loads(killed.read_text()), killed.read_text()
        assert f"resumed {s3_run} from {s3_run}/checkpoint_000000" in s3_log, s3_log[-5000:]
        s3_store, local_store = RunStore(s3_run), RunStore(str(tmp_path / "runs" / "localrun"))
        assert s3_store.read_status()["state"] == "finished" and s3_store.read_status()["iteration"] == 24
        a = s3_store.load_state(s3_store.checkpoint("24"))
        b = local_store.load_state(local_store.checkpoint("24"))
        for net in ("G", "D", "G_ema"):
            for name, tensor in a[net].items():
                assert torch.equal(tensor, b[net][name]), f"{net}.{name} differs from the uninterrupted run"
        assert [r["iteration"] for r in s3_store.stats.read()] == [r["iteration"] for r in local_store.stats.read()]

        # Nothing of the S3 run is on a local disk (the Ray nodes and their temp dirs are gone too).
        assert not list(tmp_path.rglob("s3run")) and not list(Path("/tmp").glob("r[hw]-*/**/s3run"))
        s3_figures = _evaluate(s3_run, tmp_path / "cache-s3")
        local_figures = _evaluate(local_store.uri, tmp_path / "cache-local")
    assert s3_figures["evaluate"]["metrics"] == local_figures["evaluate"]["metrics"]
    assert "checkpoint_00000024" in s3_figures["evaluate"]["metrics"]
    assert s3_figures["truncation-curve"]["rows"] == local_figures["truncation-curve"]["rows"]
    s3_memo, local_memo = s3_figures["memorization"], local_figures["memorization"]
    assert s3_memo["d_accuracy"] == local_memo["d_accuracy"]
    assert s3_memo["backbones"]["pixel"]["generated"] == local_memo["backbones"]["pixel"]["generated"]
    assert s3_memo["distance_plot"].startswith(s3_run)  # outputs went to the run in S3
