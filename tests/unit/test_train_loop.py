"""The in-process training loop: runs, logs, checkpoints, resumes exactly, stops on collapse."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from biggan.config import ConfigError, apply_overrides
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.runs.checkpoints import REQUIRED_KEYS
from biggan.runs.networks import config_of, generator_from_state
from biggan.runs.store import NoCheckpointBeforeCollapse
from biggan.train.context import LocalContext
from biggan.train.loop import train


class Killed(RuntimeError):
    pass


def synthetic_batches(kill_after: int | None = None):
    """A deterministic function of the seed, like the shard loader; optionally dies mid-run."""
    served = {"n": 0}

    def make(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            served["n"] += 1
            if kill_after is not None and served["n"] > kill_after:
                raise Killed("simulated crash")
            images = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            yield images, torch.randint(10, (micro_batch,), generator=g)

    return make


def tiny(tmp_path, name, **extra):
    overrides = {"run_root": str(tmp_path), "name": name, "cluster.num_workers": 0,
                 "train.iterations": 6, "train.log_every": 2, "train.checkpoint_every": 3,
                 "train.batch_size": 8, "model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16,
                 "model.num_classes": 10,
                 "train.ema_start": 2, "train.standing_stats_batches": 1, "train.sample_every": 2,
                 "train.keep_checkpoints": 5}
    overrides.update(extra)
    return apply_overrides(digits32(), overrides)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _assert_same_state(a: dict, b: dict):
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        for pid, st in a[key]["state"].items():
            for name, tensor in st.items():
                other = b[key]["state"][pid][name]
                assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(other)), f"{key} {pid} {name}"


def _train(cfg, **kw):
    return train(cfg, LocalContext(), **kw)


def _state(cfg, iteration: int) -> dict:
    store = RunStore(cfg.run_uri)
    return store.load_state(store.checkpoint(str(iteration)))


def test_run_writes_contract_files(tmp_path, caplog):
    cfg = tiny(tmp_path, "plain")
    result = _train(cfg, real_batches_fn=synthetic_batches())
    assert result.iteration == 6 and not result.collapsed
    store = RunStore(cfg.run_uri)
    records = store.stats.read()
    assert [r["iteration"] for r in records] == [2, 3, 4, 6]  # log ticks + checkpoint ticks
    for key in ("loss/D_real", "loss/D_fake", "loss/G", "D_out/real", "D_out/fake", "grad_norm/G",
                "grad_norm/D", "images_per_s"):
        assert key in records[-1]
    assert any(k.startswith("sv/G/") and k.endswith("/2") for k in records[-1])
    assert any(k.startswith("sv/D/") for k in records[-1])
    assert [c.iteration for c in store.checkpoints()] == [3, 6]
    assert [loc.name for loc in store.sample_sheets()] == ["iter_00000006.png"]
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000006"
    status = store.read_status()
    assert status["state"] == "finished" and status["iteration"] == 6 and status["iterations"] == 6
    state = _state(cfg, 6)
    assert set(REQUIRED_KEYS) <= set(state)
    G, cfg_back = generator_from_state(state), config_of(state)
    assert cfg_back.name == "plain" and not G.training
    # Progress goes to the `biggan.train` logger (an entry point decides where it shows), one line per record.
    progress = [r for r in caplog.records if r.name == "biggan.train" and r.getMessage().startswith("[")]
    assert [r.getMessage().split("]")[0] for r in progress] == ["[2/6", "[3/6", "[4/6", "[6/6"]
    assert {r.levelno for r in progress} == {logging.INFO}


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, caplog):
    straight = tiny(tmp_path, "straight")
    _train(straight, real_batches_fn=synthetic_batches())

    broken = tiny(tmp_path, "broken")
    # 3 iterations x (2 D steps) = 6 batches reach the checkpoint at 3; die two steps later.
    with pytest.raises(Killed):
        _train(broken, real_batches_fn=synthetic_batches(kill_after=9))
    store = RunStore(broken.run_uri)
    assert [c.iteration for c in store.checkpoints()] == [3]
    assert store.read_status()["state"] == "running"  # a killed run says nothing else
    _train(broken, real_batches_fn=synthetic_batches())
    # The resume line names the checkpoint it resumed from (in the store, not a temporary copy).
    assert f"from {store.uri}/checkpoint_00000003 at iteration 3" in caplog.text

    _assert_same_state(_state(straight, 6), _state(broken, 6))
    assert [r["iteration"] for r in store.stats.read()] == [2, 3, 4, 6]


def test_resume_applies_changed_learning_rate_and_eps(tmp_path):
    cfg = tiny(tmp_path, "lr")
    _train(cfg, real_batches_fn=synthetic_batches())
    more = apply_overrides(cfg, {"train.iterations": 9, "train.g_lr": 1e-5, "train.adam_eps": 1e-3})
    _train(more, real_batches_fn=synthetic_batches())
    state = _state(more, 9)
    group = state["opt_G"]["param_groups"][0]
    assert group["lr"] == 1e-5 and group["eps"] == 1e-3
    assert state["opt_D"]["param_groups"][0]["lr"] == cfg.train.d_lr


def test_nan_stops_cleanly_and_marks_checkpoint_before(tmp_path):
    cfg = tiny(tmp_path, "nan", **{"train.iterations": 12, "train.log_every": 3})

    def poisoned(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        n = 0
        while True:
            n += 1
            x = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            if seed % 1000 == 6 and n > 2:  # the segment after the checkpoint at 6 goes bad
                x = x * float("nan")
            yield x, torch.randint(10, (micro_batch,), generator=g)

    result = _train(cfg, real_batches_fn=poisoned)
    assert result.collapsed and result.iteration == 9
    store = RunStore(cfg.run_uri)
    assert store.marked_checkpoint_name() == "checkpoint_00000006"
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000006"
    assert store.read_status()["state"] == "collapsed"
    mark = json.loads(store.file("evaluate.json").read_text())
    assert (mark["collapse_onset"], mark["last_healthy"]) == (9, 6)


# The dead-D rule made to trip on every record (every D counts as "flat" below a spread of 1e9):
# a deterministic collapse that starts where the test says, whatever the losses do.
ALWAYS_TRIPS = {"train.collapse.flat_d_spread": 1e9, "train.collapse.patience": 3}


def test_a_collapse_is_never_scored_from_a_checkpoint_saved_after_its_onset(tmp_path):
    cfg = tiny(tmp_path, "late", **{"train.iterations": 4, "train.log_every": 1, "train.checkpoint_every": 2})
    _train(cfg, real_batches_fn=synthetic_batches())  # healthy: checkpoints 2 and 4
    # Resumed with a rule that trips from record 5 on: 5 and 6 trip (6 is a checkpoint tick, so
    # checkpoint 6 is saved inside the streak, AFTER the onset) and the run ends at 6 ("finished",
    # streak 2 < patience 3). Resumed again from checkpoint 6, record 7 completes the streak.
    _train(apply_overrides(cfg, {"train.iterations": 6, **ALWAYS_TRIPS}), real_batches_fn=synthetic_batches())
    result = _train(apply_overrides(cfg, {"train.iterations": 8, **ALWAYS_TRIPS}), real_batches_fn=synthetic_batches())
    store = RunStore(cfg.run_uri)
    assert result.collapsed and result.iteration == 7 and store.read_status()["state"] == "stopped"
    assert [c.iteration for c in store.checkpoints()] == [2, 4, 6]
    # The health travelled in checkpoint 6: the resumed run knows 4 was the last healthy record.
    mark = json.loads(store.file("evaluate.json").read_text())
    assert (mark["checkpoint"], mark["collapse_onset"], mark["last_healthy"]) == ("checkpoint_00000004", 5, 4)
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000004"
    # The marked checkpoint damaged: the newest intact one at or before the last healthy record,
    # never checkpoint 6.
    cut = tmp_path / "late" / "checkpoint_00000004" / "state.pt"
    cut.write_bytes(cut.read_bytes()[:100])
    assert store.checkpoint_to_evaluate().name == "checkpoint_00000002"
    store.checkpoint("2").location.delete()
    with pytest.raises(NoCheckpointBeforeCollapse, match=r"its discriminator died at iteration 5 and no intact "
                                                          r"checkpoint was saved before"):
        store.checkpoint_to_evaluate()


def test_a_collapse_with_no_checkpoint_before_its_onset_has_nothing_to_evaluate(tmp_path):
    # Record 1 trips (and checkpoint 1 is saved inside the streak), 2 and 3 trip: stopped at 3.
    cfg = tiny(tmp_path, "early", **{"train.iterations": 6, "train.log_every": 1, "train.checkpoint_every": 1,
                                     **ALWAYS_TRIPS})
    result = _train(cfg, real_batches_fn=synthetic_batches())
    store = RunStore(cfg.run_uri)
    assert result.collapsed and result.iteration == 3
    assert [c.iteration for c in store.checkpoints()] == [1, 2]  # both saved after the onset
    with pytest.raises(NoCheckpointBeforeCollapse) as err:
        store.checkpoint_to_evaluate()
    message = str(err.value)
    assert "\n" not in message and str(store.uri) in message and "at iteration 1" in message
    assert "no intact checkpoint was saved before" in message


def test_pruning_keeps_the_newest_until_an_fid_exists_not_the_lowest_g_loss(tmp_path, caplog):
    # An older run's options say best_metric="loss/G": it still loads, and no longer picks anything.
    cfg = tiny(tmp_path, "best", **{"train.iterations": 8, "train.log_every": 1, "train.checkpoint_every": 1,
                                    "train.keep_checkpoints": 1, "train.best_metric": "loss/G"})
    _train(cfg, real_batches_fn=synthetic_batches())
    store = RunStore(cfg.run_uri)
    losses = {r["iteration"]: r["loss/G"] for r in store.stats.read()}
    assert min(losses, key=losses.get) != 8  # G's loss would keep another one: the case this is about
    assert [c.iteration for c in store.checkpoints()] == [8]
    said = [r for r in caplog.records if r.name == "biggan.runs" and "no FID yet" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # said once, not at every prune


def test_batch_not_divisible_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not divisible"):
        tiny(tmp_path, "bad", **{"train.batch_size": 9, "train.accumulation": 2})


def test_accumulation_and_channels_last_run(tmp_path):
    """2 micro-batches per step per worker (global batch 8 = 1 worker x 2 x 4), channels_last on."""
    seen = []

    def recording(cfg, micro_batch, rank, world, seed):
        seen.append(micro_batch)
        return synthetic_batches()(cfg, micro_batch, rank, world, seed)

    cfg = tiny(tmp_path, "accum", **{"train.accumulation": 2, "train.channels_last": True, "train.iterations": 2,
                                     "train.checkpoint_every": 2, "train.log_every": 1})
    result = _train(cfg, real_batches_fn=recording)
    assert seen[0] == 4 and result.iteration == 2
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result.metrics.items() if k.startswith("loss/"))
