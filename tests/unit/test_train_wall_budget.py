"""train.wall_budget_s (studies at a fixed wall budget): training stops cleanly at the first
checkpoint past the budget, as a finished run whose checkpoint to evaluate is that one; it may
change on resume."""

from __future__ import annotations

import pytest

from biggan.experiment import SAFE_ON_RESUME
from biggan.runs import RunStore
from biggan.train.context import LocalContext
from biggan.train.loop import train
from tests.unit.test_train_loop import synthetic_batches, tiny

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_a_spent_budget_stops_at_the_next_checkpoint(tmp_path):
    # Any training time exceeds a microsecond: the first checkpoint (iteration 3 of 6) is past it.
    cfg = tiny(tmp_path, "budget", **{"train.wall_budget_s": 1e-6})
    result = train(cfg, LocalContext(), real_batches_fn=synthetic_batches())
    assert result.iteration == 3 and not result.collapsed and result.reason.startswith("wall budget of 1e-06 s")
    store = RunStore(cfg.run_uri)
    status = store.read_status()
    assert status["state"] == "finished" and status["iteration"] == 3 and "wall budget" in status["reason"]
    assert [c.iteration for c in store.checkpoints()] == [3] and store.checkpoint_to_evaluate().iteration == 3


def test_a_budget_not_spent_changes_nothing(tmp_path):
    cfg = tiny(tmp_path, "ample", **{"train.wall_budget_s": 3600.0})
    result = train(cfg, LocalContext(), real_batches_fn=synthetic_batches())
    assert result.iteration == 6 and result.reason == "finished"
    assert "train.wall_budget_s" in SAFE_ON_RESUME
