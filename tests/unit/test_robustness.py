"""Damaged inputs and bad settings end in one clear line, a damaged checkpoint falls back to the
newest intact one, and a dead discriminator stops the run by itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import apply_overrides
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.train.context import LocalContext
from biggan.train.loop import train
from tests.unit.test_train_loop import _assert_same_state, synthetic_batches, tiny

ROOT = Path(__file__).resolve().parents[2]


def _biggan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `biggan` script (its error handling is what a user sees)."""
    env = {**os.environ, "BIGGAN_NO_REAPER": "1", "BIGGAN_LOG_DIR": str(cwd / "logs")}
    return subprocess.run([sys.executable, "-c", "from biggan.cli.entry import run; run()", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("setting, rule", [
    ("train.betas=[0.0, 1.0]", r"train.betas = \[0.0, 1.0\]: each Adam beta must be in \[0, 1\)"),
    ("train.batch_size=-1", "train.batch_size = -1: Input should be greater than or equal to 1"),
    ("train.g_lr=0", "train.g_lr = 0: Input should be greater than 0"),
    ("train.batch_size=15", "train.batch_size 15 is not divisible by cluster.num_workers"),
])
def test_bad_settings_fail_before_anything_starts_naming_the_key(setting, rule, digits_shards, tmp_path):
    done = _biggan("train", "--shards", str(Path(digits_shards["train"]).parent), "--store", str(tmp_path / "runs"),
                   "--set", setting, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, done.stderr
    import re

    assert re.search(rule, error[0]), error[0]
    assert not (tmp_path / "runs").exists()


def test_a_cut_tar_stops_training_before_it_starts_naming_the_tar(digits_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(Path(digits_shards["train"]).parent, shards)
    tar = shards / "train" / "shard-000004.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    done = _biggan("train", "--shards", str(shards), "--store", str(tmp_path / "runs"), "--dry-run", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(f"Error: shard {tar} is ")
    ok = _biggan("train", "--shards", str(shards), "--store", str(tmp_path / "runs"), "--dry-run",
                 "--set", "data.on_damaged_shard=skip", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_dead_discriminator_stops_the_run_within_patience(digits_shards, tmp_path):
    torch.set_num_threads(1)
    cfg = apply_overrides(digits32(shards=str(Path(digits_shards["train"]).parent)), {
        "run_root": str(tmp_path), "name": "dead", "model.num_classes": 10, "cluster.num_workers": 0,
        "train.g_lr": 1.0, "train.d_lr": 1.0, "train.iterations": 200, "train.log_every": 5,
        "train.checkpoint_every": 100})
    RunStore(cfg.run_uri).write_options(cfg.model_dump(mode="json"))
    result = train(cfg, LocalContext())
    store = RunStore(cfg.run_uri)
    records = store.stats.read()
    flat = [r["iteration"] for r in records if r["D_out/real_std"] < 1e-5 and r["D_out/fake_std"] < 1e-5]
    assert flat, "the lr 1.0 run did not go flat: the scenario the rule is for did not happen"
    patience = cfg.train.collapse.patience
    assert result.collapsed and result.iteration <= flat[0] + (patience - 1) * cfg.train.log_every
    status = store.read_status()
    assert status["state"] == "stopped" and "dead discriminator" in status["reason"]
    assert store.marked_checkpoint_name() is None  # no healthy checkpoint was saved before it died


def test_healthy_training_never_trips_the_dead_rule(tmp_path):
    cfg = tiny(tmp_path, "healthy", **{"train.iterations": 12, "train.log_every": 1, "train.checkpoint_every": 12})
    result = train(cfg, LocalContext(), real_batches_fn=synthetic_batches())
    assert not result.collapsed and result.iteration == 12


def test_a_cut_checkpoint_is_one_line_and_resume_falls_back_to_the_previous_one(tmp_path, caplog):
    straight = tiny(tmp_path, "straight", **{"train.iterations": 9})
    train(straight, LocalContext(), real_batches_fn=synthetic_batches())
    broken = tiny(tmp_path, "broken", **{"train.iterations": 6})
    RunStore(broken.run_uri).write_options(broken.model_dump(mode="json"))
    train(broken, LocalContext(), real_batches_fn=synthetic_batches())
    cut = tmp_path / "broken" / "checkpoint_00000006" / "state.pt"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])

    named = CliRunner().invoke(main, ["sample", "--run", str(tmp_path / "broken"), "--checkpoint", "6",
                                      "--out", str(tmp_path / "out")])
    last = named.output.strip().splitlines()[-1]
    assert named.exit_code == 1 and last.startswith(f"Error: {cut} is cut short (") and last.endswith("damaged")
    assert "Traceback" not in named.output
    # The real script: the fallback's warning is a `biggan` log line on stderr, the result JSON on stdout.
    fallback = _biggan("sample", "--run", str(tmp_path / "broken"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert fallback.returncode == 0, fallback.stderr
    assert "warning: " in fallback.stderr and "checkpoint_00000006/state.pt is cut short" in fallback.stderr
    assert json.loads(fallback.stdout)["iteration"] == 3

    more = apply_overrides(broken, {"train.iterations": 9})
    train(more, LocalContext(), real_batches_fn=synthetic_batches())
    out = caplog.text  # the `biggan` loggers' records
    assert "checkpoint_00000006/state.pt is cut short" in out and "checkpoint_00000003 at iteration 3" in out
    a, b = RunStore(straight.run_uri), RunStore(more.run_uri)
    _assert_same_state(a.load_state(a.checkpoint("9")), b.load_state(b.checkpoint("9")))
