"""Imported weights through the commands that run flows: `biggan evaluate` scores an imported run
(with shards), and `biggan train --init-from` fine-tunes one on another class count, saying which
embeddings it redrew; resuming that run later does not start from the source again."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.runs import RunStore
from tests.unit._interop_helpers import SMALL_32, random_nets, write_their_folder

TINY_TRAIN = ["--workers", "0", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
              "--set", "train.batch_size=4", "--set", "train.standing_stats_batches=1",
              "--set", "train.sample_every=100", "--set", "data.shuffle_buffer=20"]
TINY_EVAL = ["--set", "num_samples=40", "--set", "batch_size=20", "--set", "classifier_epochs=1",
             "--set", "standing_passes=1", "--set", "standing_batch=20"]


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _their_folder(path, classes):
    cfg = SMALL_32.model_copy(update={"num_classes": classes})
    return write_their_folder(path, cfg, *random_nets(cfg))


@pytest.mark.slow
def test_evaluate_an_import_and_fine_tune_it_on_other_classes(prefect_harness, digits_shards, tmp_path):
    torch.set_num_threads(1)
    store = tmp_path / "runs"
    shards = digits_shards["train"].parent  # root with train/ and val/ (10 classes, 32 px)
    done = _invoke("import", "bigganpytorch", "--weights", _their_folder(tmp_path / "ten", 10), "--store", store,
                   "--name", "ten", "--shards", shards)
    assert done.exit_code == 0, done.output
    scored = _invoke("evaluate", "--run", "ten", "--store", store, *TINY_EVAL)
    assert scored.exit_code == 0, scored.output + repr(scored.exception)
    assert json.loads(scored.output)["metrics"]["checkpoint_00001234"]["FID"] > 0

    done = _invoke("import", "bigganpytorch", "--weights", _their_folder(tmp_path / "seven", 7), "--store", store,
                   "--name", "seven")
    assert done.exit_code == 0, done.output
    # The redrawn embeddings are a `biggan.train` record (the `biggan` script shows it on stderr):
    # caught on that logger itself, since Prefect's logging setup replaces the root's handlers.
    lines: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("biggan").addHandler(catcher)
    try:
        tuned = _invoke("train", "--init-from", "seven", "--shards", shards, "--store", store, "--name", "tuned",
                        *TINY_TRAIN, "--set", "train.iterations=2")
    finally:
        logging.getLogger("biggan").removeHandler(catcher)
    assert tuned.exit_code == 0, tuned.output + repr(tuned.exception)
    assert any("class count 7 -> 10: re-initialised the class embeddings only (G: shared.weight; D: embed.weight; "
               "G_ema: shared.weight)" in line for line in lines), lines
    run = RunStore(store / "tuned")
    state = run.load_state(run.checkpoint_to_evaluate())
    assert state["iteration"] == 2 and state["G"]["shared.weight"].shape == (10, SMALL_32.shared_dim)
    assert state["config"]["model"]["ch"] == SMALL_32.ch and state["config"]["train"]["init_from"].endswith(
        "seven/checkpoint_00001234")

    lines.clear()
    logging.getLogger("biggan").addHandler(catcher)
    try:
        resumed = _invoke("train", "--resume", "tuned", "--store", store, "--workers", "0",
                          "--set", "train.iterations=3")
    finally:
        logging.getLogger("biggan").removeHandler(catcher)
    assert resumed.exit_code == 0, resumed.output
    assert not any("started from" in line for line in lines) and any("resumed" in line for line in lines), lines
