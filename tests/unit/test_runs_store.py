"""The run store on a local disk: checkpoints with manifests, damage detection, pruning, the
evaluation mark, JSON-lines files and run names. (The same code on S3: tests/integration/test_s3_runs.py.)"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from biggan.runs import CheckpointDamaged, RunNotFound, RunStore
from biggan.runs.checkpoints import MANIFEST_FILE, STATE_FILE
from biggan.runs.naming import find_checkpoint, find_run, list_runs, next_run_name
from biggan.runs.store import NoCheckpointBeforeCollapse
from biggan.storage import location


def _state(iteration: int) -> dict:
    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(lin.parameters())
    return {"G": lin.state_dict(), "D": lin.state_dict(), "G_ema": lin.state_dict(),
            "opt_G": opt.state_dict(), "opt_D": opt.state_dict(), "iteration": iteration,
            "rng": {"torch": torch.get_rng_state()}, "data": {"iteration": iteration},
            "config": {"name": "x"}}


def _store(tmp_path, name="run") -> RunStore:
    store = RunStore(tmp_path / name)
    store.write_options({"preset": "digits32", "train": {"iterations": 10}})
    return store


def test_save_load_roundtrip_and_listing(tmp_path):
    store = _store(tmp_path)
    for it in (20, 10, 30):
        store.save_checkpoint(_state(it), {"d_loss": float(it)})
    (tmp_path / "run" / ".checkpoint_00000040.abc").mkdir()  # a save in progress is not listed
    infos = store.checkpoints()
    assert [i.iteration for i in infos] == [10, 20, 30]
    assert store.load_state(infos[1])["iteration"] == 20
    assert infos[1].metrics == {"d_loss": 20.0}
    assert store.checkpoint("20").name == store.checkpoint("checkpoint_00000020").name == infos[1].name
    manifest = json.loads((tmp_path / "run" / infos[1].name / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"state.pt", "meta.json"}
    assert store.checkpoint_to_evaluate().name == infos[-1].name


def test_missing_keys_is_a_clear_error_and_leaves_nothing(tmp_path):
    store = _store(tmp_path)
    bad = _state(1)
    del bad["opt_D"]
    with pytest.raises(ValueError, match="opt_D"):
        store.save_checkpoint(bad, {})
    assert store.checkpoints() == []
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["options.json"]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "biggan.runs" and r.levelno == logging.WARNING]


def test_a_cut_or_garbled_state_file_is_named_and_skipped(tmp_path, caplog):
    store = _store(tmp_path)
    for it in (1, 2, 3):
        store.save_checkpoint(_state(it), {})
    cut = tmp_path / "run" / "checkpoint_00000003" / STATE_FILE
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    garbled = tmp_path / "run" / "checkpoint_00000002" / STATE_FILE
    data = bytearray(garbled.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped: only the checksum can tell
    garbled.write_bytes(bytes(data))

    assert [c.iteration for c in store.checkpoints()] == [1, 2]  # sizes say 3 is damaged
    with pytest.raises(CheckpointDamaged, match="checkpoint_00000003/state.pt is cut short"):
        store.checkpoint("3")
    with pytest.raises(CheckpointDamaged, match="checkpoint_00000002/state.pt is damaged"):
        store.load_state(store.checkpoint("2"))
    info, state = store.load_newest_intact()
    assert info.iteration == 1 and state["iteration"] == 1
    warnings = _warnings(caplog)  # logged (biggan.runs), not printed
    assert len(warnings) == 2 and "checkpoint_00000003" in warnings[0] and "checkpoint_00000002" in warnings[1]


def test_prune_keeps_last_and_marked_and_no_training_value_picks_a_best(tmp_path):
    store = _store(tmp_path)
    losses = {1: 5.0, 2: 0.5, 3: 4.0, 4: 3.0, 5: 2.0, 6: 9.0}
    for it, loss in losses.items():
        store.save_checkpoint(_state(it), {"loss/G": loss})
    store.mark_for_evaluation(store.checkpoint("3"), "collapse at 4", onset=4, last_healthy=3)
    assert store.best_checkpoint(store.checkpoints()) is None  # no FID: G's lowest loss (2) is not "best"
    store.prune_checkpoints(keep_last=2)
    assert [i.iteration for i in store.checkpoints()] == [3, 5, 6]


def test_best_is_the_lowest_fid_once_an_evaluation_history_exists(tmp_path):
    store = _store(tmp_path)
    for it in (1, 2, 3, 4):
        store.save_checkpoint(_state(it), {"loss/G": float(10 - it)})  # the proxy prefers 4
    store.evaluations.record("fid", "checkpoint_00000001", 1, {"FID": 30.0}, {"truncation": None})
    store.evaluations.record("fid", "checkpoint_00000002", 2, {"FID": 12.0}, {"truncation": None})
    store.evaluations.record("fid", "checkpoint_00000003", 3, {"FID": 1.0}, {"truncation": 0.5})  # another setting
    store.prune_checkpoints(keep_last=1)
    assert [i.iteration for i in store.checkpoints()] == [2, 4]


def test_evaluate_mark_wins_and_a_missing_mark_falls_back_with_a_warning(tmp_path, caplog):
    store = _store(tmp_path)
    for it in (1, 2, 3):
        store.save_checkpoint(_state(it), {})
    store.mark_for_evaluation(store.checkpoint("2"), "finished")  # a finished run marks its newest (then 2)
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000002"
    store.checkpoint("2").location.delete()
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000003"
    assert "checkpoint_00000002" in _warnings(caplog)[0] and "using checkpoint_00000003" in _warnings(caplog)[0]


def test_a_collapsed_run_is_scored_at_or_before_its_last_healthy_record(tmp_path, caplog):
    store = _store(tmp_path)
    for it in (10, 20, 30, 40):  # 30 and 40 were saved at tripping ticks, after the onset at 25
        store.save_checkpoint(_state(it), {})
    store.mark_for_evaluation(store.checkpoint("20"), "collapse at iteration 45: D loss", onset=25, last_healthy=20)
    store.write_status("collapsed", 45, 100, "collapse at iteration 45: D loss")
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000020"
    garbled = tmp_path / "run" / "checkpoint_00000020" / STATE_FILE
    garbled.write_bytes(garbled.read_bytes()[:10])  # cut: the marked one is damaged
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000010"
    assert "checkpoint_00000020/state.pt is cut short" in _warnings(caplog)[-1]
    # find_checkpoint (--init-from) takes exactly the marked one: damaged is an error, not a fallback.
    with pytest.raises(CheckpointDamaged, match="the checkpoint marked for evaluation is damaged"):
        find_checkpoint(tmp_path, "run")
    store.checkpoint("10").location.delete()
    with pytest.raises(NoCheckpointBeforeCollapse, match=r"^run .*/run: it collapsed at iteration 25 and no intact "
                                                          r"checkpoint was saved before, its last healthy record "
                                                          r"at iteration 20"):
        store.checkpoint_to_evaluate()


def test_a_collapse_that_marked_nothing_hands_nothing_to_evaluation_or_init_from(tmp_path):
    store = _store(tmp_path)
    store.save_checkpoint(_state(6), {})  # saved at a tripping tick: after the onset at 6
    store.mark_for_evaluation(None, "dead discriminator at iteration 9: D is flat", onset=6, last_healthy=3)
    store.write_status("stopped", 9, 100, "dead discriminator at iteration 9: D is flat")
    for lookup in (store.checkpoint_to_evaluate, lambda: find_checkpoint(tmp_path, "run")):
        with pytest.raises(NoCheckpointBeforeCollapse, match="its discriminator died at iteration 6"):
            lookup()
    # A mark written before onsets were recorded says the same through the run's status.
    (tmp_path / "run" / "evaluate.json").write_text(json.dumps({"checkpoint": None, "reason": "collapse at 9"}))
    store.write_status("collapsed", 9, 100, "collapse at 9")
    with pytest.raises(NoCheckpointBeforeCollapse, match=r"it was stopped \(collapse at 9\)"):
        store.checkpoint_to_evaluate()


def test_json_lines_append_keep_and_torn_line(tmp_path):
    store = _store(tmp_path)
    for it in (1, 2, 3):
        store.stats.append({"iteration": it, "loss": float("nan") if it == 2 else 1.0})
    with open(store.stats.loc.local_path(), "a") as handle:
        handle.write('{"iteration": 4, "lo')  # a crash mid-append
    assert [r["iteration"] for r in store.stats.read()] == [1, 2, 3]
    assert store.stats.read()[1]["loss"] == "nan"  # JSON has no NaN
    store.stats.append({"iteration": 5})
    assert [r["iteration"] for r in store.stats.read()] == [1, 2, 3, 5]
    store.stats.keep(lambda r: r["iteration"] <= 2)
    assert [r["iteration"] for r in store.stats.read()] == [1, 2]


def test_run_names_number_after_existing_and_resume_finds_runs(tmp_path):
    root = location(tmp_path)
    assert next_run_name(root, "digits32") == "00000-digits32"
    _store(tmp_path, "00000-digits32")
    _store(tmp_path, "00006-imagenet128")
    (tmp_path / "00009-unfinished").mkdir()  # a folder without options.json still takes its number
    assert next_run_name(root, "my data!") == "00010-my-data"
    assert find_run(tmp_path, "00000-digits32").name == "00000-digits32"
    assert find_run(tmp_path, str(tmp_path / "00006-imagenet128")).name == "00006-imagenet128"
    assert find_run(tmp_path, "latest").name == "00006-imagenet128"  # the newest options.json
    with pytest.raises(RunNotFound, match="no run at"):
        find_run(tmp_path, "nope")
    assert sorted(r.name for r in list_runs(tmp_path)) == ["00000-digits32", "00006-imagenet128"]


def test_runs_listing_reports_state_iteration_and_last_fid(tmp_path):
    store = _store(tmp_path, "00001-digits32")
    store.write_status("running", 5, 10)
    store.evaluations.record("fid", "c", 5, {"FID": 42.5}, {"truncation": None})
    (summary,) = list_runs(tmp_path)
    assert (summary.preset, summary.iteration, summary.iterations, summary.state, summary.last_fid) == \
        ("digits32", 5, 10, "running", 42.5)
    status = json.loads((tmp_path / "00001-digits32" / "status.json").read_text())
    status["updated"] -= 3600  # no heartbeat for an hour
    (tmp_path / "00001-digits32" / "status.json").write_text(json.dumps(status))
    assert list_runs(tmp_path)[0].state == "interrupted"
