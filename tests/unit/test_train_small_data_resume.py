"""Exact resume with each small-data tool on: a run killed with SIGKILL mid-run (after its
checkpoint at iteration 3, inside iteration 5) and resumed ends with the weights, optimizer states,
ADA p and LeCam anchors of an uninterrupted run; and their numbers reach stats.jsonl and TensorBoard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biggan.config import apply_overrides
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.runs.tensorboard import stats_scalars
from biggan.train.context import LocalContext
from biggan.train.loop import train
from tests.support.train_until_killed import synthetic_batches
from tests.unit.test_train_loop import _assert_same_state

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]

TOOLS = {
    "diffaugment": {"train.augment.policy": "color,translation,cutout"},
    # p moves by 8 x 4 / 640 = 0.05 per interval of 4 D steps: it changes in 6 iterations yet stays
    # inside (0.3, 0.7), so every step after the resume augments; D steps 5-8 make an interval that
    # straddles the checkpoint at iteration 3 (D step 6), so its part-filled statistics travel too.
    "ada": {"train.augment.ada": "adaptive", "train.augment.ada_interval": 4, "train.augment.ada_kimg": 0.64,
            "train.augment.ada_p": 0.5, "train.d_r1_gamma": 1.0, "train.d_r1_every": 2},
    "lecam": {"train.lecam.weight": 0.3, "train.lecam.decay": 0.9, "train.augment.policy": "translation"},
}


def _cfg(tmp_path: Path, name: str, tool: str):
    overrides = {"run_root": str(tmp_path), "name": name, "cluster.num_workers": 0, "train.precision": "fp32",
                 "train.iterations": 6, "train.log_every": 2, "train.checkpoint_every": 3,
                 "train.batch_size": 8, "model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16,
                 "model.num_classes": 10, "train.ema_start": 2, "train.standing_stats_batches": 1,
                 "train.sample_every": 2, "train.keep_checkpoints": 5, **TOOLS[tool]}
    return apply_overrides(digits32(), overrides)


def _state(cfg, iteration: int) -> dict:
    store = RunStore(cfg.run_uri)
    return store.load_state(store.checkpoint(str(iteration)))


def _kill_mid_run(cfg, tmp_path: Path) -> None:
    """Train `cfg` in a child process and SIGKILL it inside iteration 5 (2 D batches per iteration:
    the 9th batch is iteration 5's first), after its checkpoint at iteration 3."""
    config = tmp_path / f"{cfg.name}.json"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    marker = tmp_path / f"{cfg.name}.hung"
    child = subprocess.Popen([sys.executable, "-m", "tests.support.train_until_killed", str(config), str(marker), "8"],
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, f"the training process ended early ({child.returncode})"
            assert time.monotonic() < deadline, "the training process never reached iteration 5"
            time.sleep(0.2)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_run_killed_mid_run_resumes_exactly(tmp_path, tool):
    straight = _cfg(tmp_path, "straight", tool)
    train(straight, LocalContext(), real_batches_fn=synthetic_batches())
    broken = _cfg(tmp_path, "broken", tool)
    _kill_mid_run(broken, tmp_path)
    store = RunStore(broken.run_uri)
    assert [c.iteration for c in store.checkpoints()] == [3] and store.read_status()["state"] == "running"
    train(broken, LocalContext(), real_batches_fn=synthetic_batches())

    a, b = _state(straight, 6), _state(broken, 6)
    _assert_same_state(a, b)
    assert a["small_data"] == b["small_data"]
    records = {r["iteration"]: r for r in store.stats.read()}
    straight_records = {r["iteration"]: r for r in RunStore(straight.run_uri).stats.read()}
    for iteration in (4, 6):
        for key, value in straight_records[iteration].items():
            if key.startswith(("augment/", "lecam/", "loss/D")):
                assert records[iteration][key] == value, key
    small = a["small_data"]
    if tool == "ada":
        assert small["ada"]["adapted"] and small["ada"]["p"] != 0.5 and 0.3 < small["ada"]["p"] < 0.7
        assert {"augment/p", "augment/r_t"} <= set(records[6]) and records[6]["augment/p"] == small["ada"]["p"]
        assert {"augment/p", "augment/r_t"} <= set(stats_scalars(records[6]))  # TensorBoard's tags
    if tool == "lecam":
        assert small["lecam"]["updates"] == 6 * 2 and records[6]["loss/D_lecam"] >= 0
        assert {"lecam/anchor_real", "lecam/anchor_fake", "loss/D_lecam"} <= set(stats_scalars(records[6]))
