"""Run identity through the real `biggan train` command: a new experiment never lands in an old
run, a resume that would change the architecture is refused before anything starts, `biggan
runs` lists the store, and the class count comes from the shard set."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from click.testing import CliRunner

from biggan.cli import main
from biggan.runs import RunStore

TINY = ["--workers", "0", "--set", "train.iterations=2", "--set", "train.checkpoint_every=2",
        "--set", "train.log_every=1", "--set", "train.batch_size=4", "--set", "model.ch=4",
        "--set", "train.standing_stats_batches=1", "--set", "data.shuffle_buffer=20"]


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.mark.slow
def test_runs_are_numbered_resume_is_checked_and_classes_come_from_the_data(prefect_harness, demo_data, tmp_path):
    # A 3-class data set: three of the digits' class folders.
    source = tmp_path / "three"
    for split in ("train", "val"):
        for wnid in sorted(p.name for p in (demo_data.imagenet_root / split).iterdir())[:3]:
            shutil.copytree(demo_data.imagenet_root / split / wnid, source / split / wnid)
        done = _invoke(["shard", "imagenet", "--root", str(source), "--split", split, "--out",
                        str(tmp_path / "shards" / split), "--resolution", "32", "--samples-per-shard", "100"])
        assert done.exit_code == 0, done.output
    store = str(tmp_path / "runs")
    for _ in range(2):
        done = _invoke(["train", "--shards", str(tmp_path / "shards"), "--store", store, *TINY])
        assert done.exit_code == 0, done.output + repr(done.exception)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["00000-digits32", "00001-digits32"]

    run = RunStore(f"{store}/00001-digits32")
    state = run.load_state(run.checkpoint_to_evaluate())
    assert state["config"]["model"]["num_classes"] == 3  # digits32 names no class count: the data's
    assert state["G"]["shared.weight"].shape[0] == 3 and state["D"]["embed.weight"].shape[0] == 3

    listed = _invoke(["runs", "--store", store, "--json"])
    assert [(r["name"], r["state"], r["iteration"]) for r in json.loads(listed.output)] == \
        [("00000-digits32", "finished", 2), ("00001-digits32", "finished", 2)]

    before = sorted(p.name for p in (tmp_path / "runs" / "00001-digits32").iterdir())
    refused = _invoke(["train", "--resume", "latest", "--store", store, "--set", "model.ch=8"])
    assert refused.exit_code == 2 and "model.ch changed" in refused.output and "Traceback" not in refused.output
    assert sorted(p.name for p in (tmp_path / "runs" / "00001-digits32").iterdir()) == before  # nothing started

    # The resume line is a `biggan.train` record: caught on that logger itself, since Prefect's logging
    # setup (at the session's first flow run) replaces the root logger's handlers, pytest's included.
    lines: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("biggan").addHandler(catcher)
    try:
        resumed = _invoke(["train", "--resume", "00000-digits32", "--store", store, "--workers", "0",
                           "--set", "train.iterations=4", "--set", "train.log_every=1"])
    finally:
        logging.getLogger("biggan").removeHandler(catcher)
    assert resumed.exit_code == 0, resumed.output
    first = RunStore(f"{store}/00000-digits32")
    assert first.read_status()["iteration"] == 4 and [c.iteration for c in first.checkpoints()] == [2, 4]
    assert any(f"from {first.uri}/checkpoint_00000002 at iteration 2" in line for line in lines)
