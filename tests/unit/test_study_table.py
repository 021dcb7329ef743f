"""The study's table read back from its runs' files: mean +- std over seeds (the sample std) and per
seed, the best-FID truncation point, collapsed seeds with their onset, images/s; a failed run and a
collapsed run with nothing to score are rows that say so; study.csv, runs.csv, study.md, study.png."""

from __future__ import annotations

import csv
import io
import statistics

import pytest

from biggan.runs import RunStore
from biggan.study.plan import plan_study
from biggan.study.scoring import is_scored, record_failure, write_score
from biggan.study.spec import StudySpec
from biggan.study.table import build_table, write_table

FIDS = {"batch_size-16-s0": 30.0, "batch_size-16-s1": 34.0, "batch_size-16-s2": 35.0, "batch_size-32-s0": 20.0}


@pytest.fixture
def study(digits_shards, tmp_path):
    spec = StudySpec(name="st", shards=str(digits_shards["train"].parent), grid={"train.batch_size": [16, 32]},
                     seeds=[0, 1, 2])
    plan = plan_study(spec, str(tmp_path / "store"))
    for run in plan.runs:
        if run.name == "batch_size-32-s2":
            continue  # never started
        store = RunStore(plan.location / run.name)
        store.write_options(run.config.model_dump(mode="json"))
        for i, speed in enumerate((90.0, 100.0, 130.0)):
            store.stats.append({"iteration": 10 * (i + 1), "images_per_s": speed})
        state = {"batch_size-32-s1": "collapsed"}.get(run.name, "finished")
        store.write_status(state, 30, 30)
        if state == "collapsed":
            store.mark_for_evaluation(None, "collapse at iteration 30", onset=20, last_healthy=10)
            write_score(plan.root, run.name, {"state": "nothing_to_score", "reason": "no checkpoint before",
                                              "collapse_onset": 20})
        elif run.name in FIDS:
            fid = FIDS[run.name]
            write_score(plan.root, run.name, {
                "state": "scored", "checkpoint": "checkpoint_00000030", "iteration": 30, "FID": fid, "IS": fid / 10,
                "IS_std": 0.1, "best_fid": {"threshold": 1.0, "FID": fid - 5, "IS": 1.0}, "fingerprint": "f" * 64})
    record_failure(plan.root, "batch_size-32-s0", "score", "ValueError: boom")  # scored later: the score wins
    record_failure(plan.root, "batch_size-16-s2", "score", "RuntimeError: out of memory")
    write_score(plan.root, "batch_size-16-s2", {"state": "failed", "error": "RuntimeError: out of memory"})
    # batch_size-16-s2 had been scored before (FID 35): a failed re-score leaves no score
    return plan


def test_rows_per_run_and_per_cell(study):
    cells, runs = build_table(study)
    by = {r.run: r for r in runs}
    assert by["batch_size-16-s0"].state == "scored" and by["batch_size-16-s0"].FID == 30.0
    assert by["batch_size-16-s2"].state == "failed" and "out of memory" in by["batch_size-16-s2"].error
    assert by["batch_size-32-s1"].state == "collapsed, nothing to score" and by["batch_size-32-s1"].collapse_onset == 20
    assert by["batch_size-32-s2"].state == "not started" and by["batch_size-32-s0"].state == "scored"
    assert by["batch_size-16-s0"].images_per_s == 100.0  # the median over log ticks
    small, large = cells
    assert (small.cell, small.seeds, small.scored, small.failed, small.collapsed) == ("batch_size-16", 3, 2, 1, 0)
    assert small.FID_mean == 32.0 and small.FID_std == pytest.approx(statistics.stdev([30.0, 34.0]))
    assert small.FID_per_seed == {0: 30.0, 1: 34.0} and small.best_FID_mean == 27.0 and small.best_thresholds == [1, 1]
    assert (large.scored, large.collapsed, large.collapsed_at) == (1, 1, [20])
    assert (large.FID_mean, large.FID_std) == (20.0, None)  # one scored seed: no spread
    assert large.within_spread_of_best is True and small.within_spread_of_best is False  # 12 apart, std 2.8
    assert is_scored(study.root, "batch_size-32-s1") and not is_scored(study.root, "batch_size-16-s2")


def test_files_of_the_table(study):
    written = write_table(study)
    root = study.location
    rows = list(csv.DictReader(io.StringIO((root / "study.csv").read_text())))
    assert [r["cell"] for r in rows] == ["batch_size-16", "batch_size-32"] and rows[0]["train.batch_size"] == "16"
    assert float(rows[0]["FID_mean"]) == 32.0 and rows[0]["FID_per_seed"] == "s0=30 s1=34"
    assert rows[1]["collapsed_at"] == "20" and rows[1]["FID_std"] == ""
    assert len(list(csv.DictReader(io.StringIO((root / "runs.csv").read_text())))) == 6
    text = (root / "study.md").read_text()
    assert "| batch_size-16 | `16` | 32 +- 2.828 |" in text and "1/3 at 20" in text
    assert "`batch_size-16-s2`: score: RuntimeError: out of memory" in text and "`ffffffffffffffff`" in text
    assert "more than one" not in text
    assert (root / "study.png").read_bytes()[:4] == b"\x89PNG" and written["fingerprints"] == ["f" * 64]


def test_two_fingerprints_are_flagged(study):
    write_score(study.root, "batch_size-32-s0", {
        "state": "scored", "checkpoint": "c", "iteration": 30, "FID": 20.0, "IS": 2.0, "IS_std": 0.1,
        "best_fid": None, "fingerprint": "e" * 64})
    write_table(study)
    assert "(more than one: these scores do not compare)" in (study.location / "study.md").read_text()


def test_a_collapsed_run_with_nothing_before_its_onset_is_a_row_not_a_failure(study):
    from biggan.config import EvalConfig
    from biggan.study.scoring import read_score, score_run

    outcome = score_run(study.root, "batch_size-32-s1", EvalConfig(), classifier=None)
    assert outcome["state"] == "nothing_to_score" and outcome["collapse_onset"] == 20
    assert "before" in outcome["reason"] and read_score(study.root, "batch_size-32-s1")["state"] == "nothing_to_score"
