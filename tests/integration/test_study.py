"""`biggan study` end to end on the demo digits: 2 cells x 2 seeds of tiny runs on the command's own
local Ray, two at a time; killed (kill -9 of its process group) once two runs have finished, then
`--resume`: every run exists and is scored, nothing finished was trained again, the table has 2
rows with mean and std over 2 seeds, and every score record carries one classifier fingerprint."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from biggan.runs import RunStore
from tests.support.ray_nodes import stop_session

ROOT = Path(__file__).resolve().parents[2]
RUNS = ["batch_size-4-s0", "batch_size-4-s1", "batch_size-8-s0", "batch_size-8-s1"]
TINY = ["--set", "train.iterations=4", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
        "--set", "model.ch=4", "--set", "train.standing_stats_batches=1", "--set", "data.shuffle_buffer=20",
        "--set", "eval.num_samples=100", "--set", "eval.batch_size=50", "--set", "eval.standing_passes=1",
        "--set", "eval.standing_batch=16", "--set", "eval.classifier_epochs=1", "--set", "eval.thresholds=[1.0]"]


def _command(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from biggan.cli.entry import run; run()", "study", *args],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _finished(study: Path) -> list[str]:
    return [name for name in RUNS if ((RunStore(str(study / name)).read_status() or {}).get("state") == "finished")]


def _snapshot(run: Path) -> dict:
    """What training wrote: checkpoints, stats and status (evaluation outputs may be added later)."""
    store = RunStore(str(run))
    return {"checkpoints": [c.name for c in store.checkpoints()], "stats": (run / "stats.jsonl").read_bytes(),
            "status": (run / "status.json").read_bytes(), "options": (run / "options.json").read_bytes()}


@pytest.mark.slow
def test_a_killed_study_resumes_without_rerunning_what_finished(prefect_harness, digits_shards, tmp_path):
    from prefect.settings import PREFECT_API_URL

    ray_tmp = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))  # short: Ray's socket paths live under it
    marker = f"BIGGAN_TEST_STUDY={uuid.uuid4().hex}"  # every process the commands start inherits it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "BIGGAN_NO_REAPER")}
    env.update(dict([marker.split("=", 1)]), PYTHONPATH=str(ROOT), RAY_TMPDIR=str(ray_tmp),
               BIGGAN_LOG_DIR=str(tmp_path / "logs"), BIGGAN_CACHE=str(tmp_path / "cache"),
               PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_LOGGING_LEVEL="INFO")
    store, study = tmp_path / "store", tmp_path / "store" / "bs"
    args = ["--grid", "train.batch_size=4,8", "--seeds", "2", "--shards", str(Path(digits_shards["train"]).parent),
            "--store", str(store), "--name", "bs", "--workers", "1", "--max-parallel", "2", *TINY]
    first = _command(args, env, tmp_path / "first.log")
    try:
        deadline = time.time() + 240
        while len(_finished(study)) < 2:
            assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()[-4000:]
            time.sleep(0.3)
        os.killpg(first.pid, signal.SIGKILL)  # the whole command, mid-study
        first.wait(timeout=30)
        done_before = _finished(study)
        assert 2 <= len(done_before) < 4 and not (study / "study.csv").exists()
        before = {name: _snapshot(study / name) for name in done_before}
        time.sleep(8)  # the command's reaper ends its Ray (biggan/cli/reaper.py: 1 s polls, 5 s grace)

        second = _command(["--resume", "bs", "--store", str(store), "--max-parallel", "2"], env,
                          tmp_path / "second.log")
        assert second.wait(timeout=420) == 0, (tmp_path / "second.log").read_text()[-4000:]
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        stop_session(marker, [ray_tmp])

    log = (tmp_path / "second.log").read_text()
    for name in done_before:  # not trained again: the same checkpoints, stats and status bytes
        assert _snapshot(study / name) == before[name], name
        assert f"Beginning subflow run 'train-{name}'" not in log
    for name in set(RUNS) - set(done_before):
        assert f"Beginning subflow run 'train-{name}'" in log  # the others were trained (or resumed) here
    assert sorted(_finished(study)) == RUNS
    spec = json.loads((study / "study.json").read_text())
    assert spec["runs"] == RUNS and spec["grid"] == {"train.batch_size": [4, 8]}

    cells = list(csv.DictReader(io.StringIO((study / "study.csv").read_text())))
    assert [c["cell"] for c in cells] == ["batch_size-4", "batch_size-8"]
    for cell in cells:
        assert cell["scored"] == "2" and cell["failed"] == "0"
        assert float(cell["FID_mean"]) > 0 and float(cell["FID_std"]) >= 0 and cell["FID_per_seed"].count("=") == 2
        assert float(cell["IS_mean"]) >= 1 and cell["IS_std"] != ""
    fingerprints = set()
    for name in RUNS:
        records = [json.loads(line) for line in (study / name / "metric-fid.jsonl").read_text().splitlines()]
        fingerprints |= {r["fingerprint"] for r in records}
        assert json.loads((study / "scores" / f"{name}.json").read_text())["state"] == "scored"
    assert len(fingerprints) == 1
    assert (study / "study.png").read_bytes()[:4] == b"\x89PNG" and "| batch_size-8 |" in log


@pytest.mark.slow
def test_a_run_that_fails_is_a_row_marked_failed_not_a_failed_study(prefect_harness, digits_shards, tmp_path):
    """Two cells trained in this process; one run's folder is taken by a file, so its training fails
    after the plan accepted it: the flow completes, the other run is scored, the table says which failed."""
    from biggan.study.presets import build_spec
    from biggan_flows.study import study_biggan_flow

    store = tmp_path / "store"
    overrides = {"train.iterations": 2, "train.checkpoint_every": 2, "train.log_every": 1, "model.ch": 4,
                 "train.standing_stats_batches": 1, "data.shuffle_buffer": 20, "eval.num_samples": 100,
                 "eval.batch_size": 50, "eval.standing_passes": 1, "eval.standing_batch": 16,
                 "eval.classifier_epochs": 1, "eval.cache_dir": str(tmp_path / "cache")}
    spec = build_spec("broken", grid={"train.batch_size": [4, 8]}, overrides=overrides, num_workers=0,
                      shards=str(Path(digits_shards["train"]).parent), truncation_curve=False)
    (store / "broken").mkdir(parents=True)
    (store / "broken" / "batch_size-8-s0").write_text("not a run folder")
    result = study_biggan_flow(spec=spec, store=str(store))
    assert result["failed"] == ["batch_size-8-s0"]
    rows = {row["run"]: row for row in result["runs"]}
    assert rows["batch_size-4-s0"]["state"] == "scored" and rows["batch_size-4-s0"]["FID"] > 0
    assert rows["batch_size-8-s0"]["state"] == "failed" and rows["batch_size-8-s0"]["error"].startswith("train: ")
    cells = {c["cell"]: c for c in result["cells"]}
    assert (cells["batch_size-4"]["scored"], cells["batch_size-8"]["failed"]) == (1, 1)
    assert "`batch_size-8-s0`: train: " in (store / "broken" / "study.md").read_text()
