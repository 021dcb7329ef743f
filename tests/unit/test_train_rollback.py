"""Recover instead of stop (`train.collapse.action=rollback`): go back to the last healthy
checkpoint, apply the next remedy, continue; exact resume across a rollback; remedies refused
before the run starts; the rollback target survives pruning."""

from __future__ import annotations

import json

import pytest
import torch

from biggan.config import ConfigError, apply_overrides
from biggan.experiment import check_remedies
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.runs.naming import list_runs
from biggan.train.context import LocalContext
from biggan.train.loop import segment_seed, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Killed(RuntimeError):
    pass


def tiny(tmp_path, name, rollback: bool = True, **extra):
    overrides = {"run_root": str(tmp_path), "name": name, "cluster.num_workers": 0,
                 "train.iterations": 12, "train.log_every": 3, "train.checkpoint_every": 3,
                 "train.batch_size": 8, "model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16,
                 "model.num_classes": 10, "train.ema_start": 2, "train.standing_stats_batches": 1,
                 "train.sample_every": 10, "train.keep_checkpoints": 5}
    if rollback:
        overrides.update({"train.collapse.action": "rollback", "train.collapse.remedies": [{"train.g_lr": 1e-5}]})
    overrides.update(extra)
    return apply_overrides(digits32(), overrides)


# segment_seed(0, 0, 6) = 6: the stream of the segment that starts at the checkpoint at 6, before
# any rollback. After one rollback, the same segment's seed ends in 013, after two in 020.
POISON_FIRST = {6}
POISON_TWICE = {6, 13}


def batches(poisoned: set[int] = frozenset(), kill: set[int] = frozenset()):
    """Deterministic in the seed; NaN images from the 3rd batch of a poisoned segment on (the
    record at 9 is non-finite: an immediate collapse), a crash in a `kill` segment."""
    def make(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        n = 0
        while True:
            n += 1
            if seed % 1000 in kill and n > 2:
                raise Killed("simulated crash")
            x = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            if seed % 1000 in poisoned and n > 2:
                x = x * float("nan")
            yield x, torch.randint(10, (micro_batch,), generator=g)
    return make


def _train(cfg, **kw):
    return train(cfg, LocalContext(), **kw)


def _state(cfg, iteration: int) -> dict:
    store = RunStore(cfg.run_uri)
    return store.load_state(store.checkpoint(str(iteration)))


def _assert_same_weights(a: dict, b: dict):
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        assert a[key]["param_groups"] == b[key]["param_groups"]
        for pid, st in a[key]["state"].items():
            for name, tensor in st.items():
                assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(b[key]["state"][pid][name]))


def test_seeds_after_a_rollback_differ_and_before_one_are_unchanged():
    assert segment_seed(0, 0, 6) == 6 and segment_seed(0, 0, 6, 0) == 6
    assert segment_seed(0, 0, 6, 1) % 1000 == 13 and segment_seed(0, 0, 6, 2) % 1000 == 20


def test_a_collapse_rolls_back_applies_the_remedy_and_finishes(tmp_path):
    cfg = tiny(tmp_path, "recovers")
    result = _train(cfg, real_batches_fn=batches(POISON_FIRST))
    assert not result.collapsed and result.iteration == 12 and result.rollbacks == 1
    assert result.reason == "finished"  # the collapse it recovered from is the rollback's record, not why it ended
    store = RunStore(cfg.run_uri)
    assert store.read_status()["state"] == "finished"
    assert store.evaluation_mark() == {"checkpoint": "checkpoint_00000012", "reason": "finished"}
    # The event in stats.jsonl: where it collapsed, why, where it went, what changed.
    records = store.stats.read()
    events = [r for r in records if r.get("event") == "rollback"]
    assert len(events) == 1
    event = events[0]
    assert (event["iteration"], event["collapsed_at"], event["to_iteration"], event["last_healthy"]) == (6, 9, 6, 6)
    assert event["checkpoint"] == "checkpoint_00000006" and "non-finite" in event["signal"]
    assert event["changed"] == {"train.g_lr": [cfg.train.g_lr, 1e-5]}
    assert [r["iteration"] for r in records if "event" not in r] == [3, 6, 9, 12]  # 9 is the new branch's
    # The abandoned record (the NaN at 9) is kept apart, with its rollback's number.
    abandoned = store.history.rolled_back.read()
    assert [(r["iteration"], r["rollback"]) for r in abandoned] == [(9, 1)]
    # Options history and options.json: a resume continues with the remedy.
    assert [e["changed"] for e in store.rollbacks()] == [{"train.g_lr": [cfg.train.g_lr, 1e-5]}]
    assert store.read_options()["train"]["g_lr"] == 1e-5
    final = _state(cfg, 12)
    assert final["opt_G"]["param_groups"][0]["lr"] == 1e-5
    assert final["opt_D"]["param_groups"][0]["lr"] == cfg.train.d_lr
    assert all(torch.isfinite(t).all() for t in final["G"].values() if t.is_floating_point())
    assert (tmp_path / "recovers" / "spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # TensorBoard has the rollback as a scalar at the iteration it went back to.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "recovers" / "tensorboard" / "train"))
    board.Reload()
    assert [(e.step, e.value) for e in board.Scalars("collapse/rollback")] == [(6, 1.0)]
    # `biggan runs` shows it.
    summary = next(r for r in list_runs(tmp_path) if r.name == "recovers")
    assert [(r["collapsed_at"], r["to_iteration"]) for r in summary.rollbacks] == [(9, 6)]


@pytest.mark.parametrize("kill_segment", [13, 16], ids=["before-the-next-checkpoint", "after-it"])
def test_a_resume_after_a_rollback_is_exact(tmp_path, kill_segment):
    straight = tiny(tmp_path, "straight")
    _train(straight, real_batches_fn=batches(POISON_FIRST))
    broken = tiny(tmp_path, "broken")
    # The crash comes after the rollback: in the segment from 6 (seed ...013) or from 9 (...016).
    with pytest.raises(Killed):
        _train(broken, real_batches_fn=batches(POISON_FIRST, kill={kill_segment}))
    store = RunStore(broken.run_uri)
    assert len(store.rollbacks()) == 1 and store.read_status()["state"] == "running"
    # Resumed with the config it was launched with (as a Ray restart does): the history's remedy
    # and rollback count are taken up again, and the weights come out bit for bit the same.
    result = _train(broken, real_batches_fn=batches(POISON_FIRST))
    assert not result.collapsed and result.rollbacks == 1
    _assert_same_weights(_state(straight, 12), _state(broken, 12))
    logged = [r["iteration"] for r in RunStore(straight.run_uri).stats.read()]
    assert [r["iteration"] for r in store.stats.read()] == logged


def test_a_value_set_on_resume_wins_over_a_recorded_remedy(tmp_path):
    cfg = tiny(tmp_path, "override")
    with pytest.raises(Killed):
        _train(cfg, real_batches_fn=batches(POISON_FIRST, kill={13}))
    _train(apply_overrides(cfg, {"train.g_lr": 3e-5}), real_batches_fn=batches(POISON_FIRST))
    assert _state(cfg, 12)["opt_G"]["param_groups"][0]["lr"] == 3e-5


def test_after_max_rollbacks_the_next_collapse_stops_the_run(tmp_path):
    cfg = tiny(tmp_path, "gives-up", **{"train.collapse.max_rollbacks": 1})
    result = _train(cfg, real_batches_fn=batches(POISON_TWICE))
    assert result.collapsed and result.rollbacks == 1 and result.iteration == 9
    store = RunStore(cfg.run_uri)
    assert store.read_status()["state"] == "collapsed"
    mark = json.loads(store.file("evaluate.json").read_text())
    assert (mark["checkpoint"], mark["collapse_onset"], mark["last_healthy"]) == ("checkpoint_00000006", 9, 6)


def test_without_a_checkpoint_before_the_collapse_the_run_stops_and_says_why(tmp_path):
    cfg = tiny(tmp_path, "nothing", **{"train.checkpoint_every": 20})
    result = _train(cfg, real_batches_fn=batches({0}))  # the first segment is poisoned
    assert result.collapsed and result.rollbacks == 0
    assert "no checkpoint was saved at or before the last healthy record" in result.reason


def test_the_rollback_target_survives_pruning(tmp_path):
    """keep_checkpoints=1 and checkpoints saved inside a tripping streak: the newest checkpoint at
    or before the last healthy record is kept (it is what a rollback or Section 4's score needs)."""
    cfg = tiny(tmp_path, "keep", rollback=False, **{"train.iterations": 4, "train.log_every": 1,
                                                    "train.checkpoint_every": 1, "train.keep_checkpoints": 1})
    _train(cfg, real_batches_fn=batches())
    # The first session's end marked checkpoint 4 for evaluation, which alone would keep it; one long
    # session has no such mark before it stops.
    RunStore(cfg.run_uri).file("evaluate.json").delete()
    trips = {"train.iterations": 8, "train.collapse.flat_d_spread": 1e9, "train.collapse.patience": 3}
    result = _train(apply_overrides(cfg, trips), real_batches_fn=batches())
    store = RunStore(cfg.run_uri)
    assert result.collapsed and result.iteration == 7
    assert [c.iteration for c in store.checkpoints()] == [4, 6]
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000004"


@pytest.mark.parametrize("remedies, message", [
    ([{"train.g_lrr": 1e-5}], r"train.collapse.remedies\[0\]: unknown config key 'train.g_lrr'; did you mean "
                              r"train.g_lr"),
    ([{"train.g_lr": 1e-5}, {"model.ch": 4}], r"train.collapse.remedies\[1\]: model.ch cannot change mid-run: it "
                                              r"defines the experiment"),
    ([{"model.g_sn": False}], r"remedies\[0\]: model.g_sn cannot change mid-run"),
    ([{"data.shuffle_buffer": 10}], r"remedies\[0\]: data.shuffle_buffer cannot change mid-run: a running worker"),
    ([{"cluster.num_workers": 4}], r"remedies\[0\]: cluster.num_workers cannot change mid-run"),
    ([{"train.collapse.max_rollbacks": 9}], r"remedies\[0\]: train.collapse.max_rollbacks cannot change mid-run"),
    ([{"train.d_r1_gamma": -1.0}], r"remedies\[0\]: train.d_r1_gamma = -1.0: "),
    ([{}], r"remedies\[0\] is empty"),
    ([{"train.g_sigma.mode": "reg", "train.g_sigma.target": "ratio"}], r"remedies\[0\]: .*sn_tracked_svs >= 2"),
])
def test_a_bad_remedy_is_refused_in_one_line(tmp_path, remedies, message):
    extra = {"model.sn_tracked_svs": 1} if "ratio" in str(remedies) else {}
    cfg = tiny(tmp_path, "bad", **{"train.collapse.remedies": remedies, **extra})
    with pytest.raises(ConfigError, match=message) as err:
        check_remedies(cfg)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=message):  # the loop refuses it too, before anything starts
        _train(cfg, real_batches_fn=batches())
    assert not (tmp_path / "bad").exists()


def test_good_remedies_pass(tmp_path):
    check_remedies(tiny(tmp_path, "good", **{"train.collapse.remedies": [
        {"train.g_lr": 2.5e-5, "train.d_lr": 1e-4}, {"train.d_r1_gamma": 1.0, "train.d_r1_every": 4},
        {"train.d_dropout_keep": 0.8, "train.d_betas": [0.5, 0.999], "train.g_sigma.mode": "clamp"}]}))


def test_a_bad_remedy_fails_the_dry_run_in_one_line(tmp_path, digits_shards):
    from click.testing import CliRunner

    from biggan.cli import main

    result = CliRunner().invoke(main, ["train", "--shards", str(digits_shards["train"]), "--store", str(tmp_path),
                                       "--set", "train.collapse.action=rollback",
                                       "--set", "train.collapse.remedies=[{model.ch: 4}]", "--dry-run"])
    assert result.exit_code == 2
    assert "train.collapse.remedies[0]: model.ch cannot change mid-run" in result.output
    assert "Traceback" not in result.output


def test_scores_of_checkpoints_a_rollback_deleted_count_for_nothing(tmp_path):
    """The run saves a new checkpoint under a deleted one's name: it must be scored in its turn,
    and the abandoned weights' FID is neither its score nor a candidate for the best."""
    import time

    from biggan.runs.checkpoints import checkpoint_name

    cfg = tiny(tmp_path, "scored", rollback=False, **{"train.iterations": 6})
    _train(cfg, real_batches_fn=batches())
    store = RunStore(cfg.run_uri)
    store.evaluations.watch(["fid"], None)
    for iteration, fid in ((3, 50.0), (6, 10.0)):
        store.evaluations.record("fid", checkpoint_name(iteration), iteration, {"FID": fid}, {"truncation": None})
    assert store.evaluations.scored("fid") == {"checkpoint_00000003", "checkpoint_00000006"}
    time.sleep(0.01)
    store.roll_back(1, store.checkpoint("3"), 6, 6, 3, "collapse: test", {}, cfg.model_dump(mode="json"))
    assert [c.iteration for c in store.checkpoints()] == [3]
    assert store.evaluations.scored("fid") == {"checkpoint_00000003"}
    assert store.evaluations.best_fid(["checkpoint_00000003", "checkpoint_00000006"]) == "checkpoint_00000003"
    assert store.evaluations.pending(["checkpoint_00000006"]) == {"checkpoint_00000006"}
    store.evaluations.record("fid", "checkpoint_00000006", 6, {"FID": 30.0}, {"truncation": None})
    assert store.evaluations.results(["fid"])["checkpoint_00000006"]["metrics"] == {"FID": 30.0}


def test_biggan_runs_lists_rollbacks(tmp_path):
    from click.testing import CliRunner

    from biggan.cli import main

    cfg = tiny(tmp_path, "listed")
    _train(cfg, real_batches_fn=batches(POISON_FIRST))
    result = CliRunner().invoke(main, ["runs", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("listed"))
    assert "finished" in line and line.rstrip().endswith(", 1 rollback (9->6)")
    listed = CliRunner().invoke(main, ["runs", "--store", str(tmp_path), "--json"])
    assert json.loads(listed.output)[0]["rollbacks"][0]["changed"] == {"train.g_lr": [cfg.train.g_lr, 1e-5]}
