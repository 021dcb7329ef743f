"""A preemption notice (issue 25): the group checkpoints at the next step boundary, without reseeding its data
streams, so a restart loses at most that step; resumed from that checkpoint the run ends bit for bit where an
uninterrupted one does (same size). The notice comes through the context's `preemption_notice()`, as the Ray
launcher's context passes Ray's preemption info and SIGTERM on."""

from __future__ import annotations

import logging

import pytest
import torch

from biggan.config import apply_overrides
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.train.context import LocalContext
from biggan.train.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Killed(RuntimeError):
    pass


def _batches(kill_after: int | None = None):
    """A deterministic stream per seed (a shard stream's stand-in); dies after `kill_after` batches in all."""
    served = {"n": 0}

    def make(cfg, batch, stream, streams, seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            served["n"] += 1
            if kill_after is not None and served["n"] > kill_after:
                raise Killed("the node is gone")
            yield torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1, torch.randint(10, (batch,), generator=g)

    return make


class NoticeAfter(LocalContext):
    """A context told, from the step of iteration `at` on, that its node is being reclaimed."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.steps = at, 0

    def preemption_notice(self) -> str | None:
        self.steps += 1
        return "node n1 drained" if self.steps >= self.at else None


def _cfg(tmp_path, name):
    return apply_overrides(digits32(), {
        "run_root": str(tmp_path), "name": name, "cluster.num_workers": 0, "train.iterations": 8,
        "train.log_every": 2, "train.checkpoint_every": 3, "train.batch_size": 8, "model.ch": 8,
        "model.shared_dim": 8, "model.dim_z": 16, "model.num_classes": 10, "train.ema_start": 2,
        "train.standing_stats_batches": 1, "train.sample_every": 2, "train.keep_checkpoints": 10,
        "train.precision": "fp32"})


def _final(cfg) -> dict:
    store = RunStore(cfg.run_uri)
    return store.load_state(store.checkpoint("8"))


def test_a_notice_checkpoints_at_the_next_step_and_the_resume_is_exact(tmp_path, caplog):
    straight = _cfg(tmp_path, "straight")
    train(straight, LocalContext(), real_batches_fn=_batches())

    cfg = _cfg(tmp_path, "preempted")
    # d_steps=2 real batches per iteration: the 11th is read in iteration 6, after the notice's checkpoint at 4
    # and before the checkpoint at 6, so the restart has only the preemption checkpoint to go back to.
    with pytest.raises(Killed):
        train(cfg, NoticeAfter(4), real_batches_fn=_batches(kill_after=10))
    store = RunStore(cfg.run_uri)
    assert [c.iteration for c in store.checkpoints()] == [3, 4]
    blob = store.load_state(store.checkpoint("4"))
    assert blob["data"]["segment_start"] == 3 and len(blob["data"]["latent_states"]) == 1
    events = [r for r in store.stats.read() if r.get("event") == "preemption"]
    assert [(e["iteration"], e["notice"]) for e in events] == [(4, "node n1 drained")]  # one notice, one checkpoint

    with caplog.at_level(logging.INFO, logger="biggan.train"):
        train(cfg, LocalContext(), real_batches_fn=_batches())
    assert any("resuming mid-segment" in r.getMessage() for r in caplog.records)
    a, b = _final(straight), _final(cfg)
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs from the uninterrupted run"
    # No iteration trained twice in the record: the resume dropped the records after its checkpoint.
    iterations = [r["iteration"] for r in store.stats.read() if "event" not in r]
    assert iterations == [2, 3, 4, 6, 8]  # log ticks and checkpoint ticks
    assert all(r["workers"] == 1 for r in store.stats.read() if "event" not in r)


def test_a_notice_at_a_checkpoint_tick_takes_no_second_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "on-tick")
    train(cfg, NoticeAfter(3), real_batches_fn=_batches())  # the notice arrives at iteration 3, a checkpoint tick
    store = RunStore(cfg.run_uri)
    assert [c.iteration for c in store.checkpoints()] == [3, 6, 8]
    assert not [r for r in store.stats.read() if r.get("event") == "preemption"]
