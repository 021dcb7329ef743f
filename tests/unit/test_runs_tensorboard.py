"""TensorBoard event files of a run, read back with TensorBoard's own reader: the training loop's
stats, singular values and sample sheets; resume without stale points; the evaluate node's
figures; object-store snapshots and rotation; a failing writer never stops training."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from pyarrow import fs as pafs
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from biggan.runs import RunStore
from biggan.runs import tensorboard as tb
from biggan.storage import Location
from tests.unit.test_train_loop import Killed, _train, synthetic_batches, tiny

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _read(folder) -> ea.EventAccumulator:
    """TensorBoard's reader over one run folder, keeping every point (0: no reservoir sampling)."""
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def _f32(value: float) -> float:
    return torch.tensor(value, dtype=torch.float32).item()  # event files hold float32 scalars


def test_training_writes_losses_singular_values_and_sheets(tmp_path):
    cfg = tiny(tmp_path, "plain")
    _train(cfg, real_batches_fn=synthetic_batches())
    store = RunStore(cfg.run_uri)
    records = store.stats.read()
    acc = _read(store.tensorboard_dir() / tb.TRAIN)

    assert [(e.step, e.value) for e in acc.Scalars("loss/D")] == [(r["iteration"], _f32(r["loss/D"])) for r in records]
    for key in ("loss/G", "D_out/real", "grad_norm/D", "images_per_s", "iterations_per_s", "collapse_tripped"):
        assert [e.value for e in acc.Scalars(key)] == [_f32(float(r[key])) for r in records], key
    sv = next(k for k in records[-1] if k.startswith("sv/G/") and k.endswith("/0"))
    tag = "sv_G/" + sv.removeprefix("sv/G/")  # grouped per network in TensorBoard's UI
    assert acc.Scalars(tag)[-1].step == 6 and acc.Scalars(tag)[-1].value == _f32(records[-1][sv])
    assert any(t.startswith("sv_D/") for t in acc.Tags()["scalars"])

    [image] = acc.Images(tb.SAMPLES_TAG)
    sheet = store.sample_sheet(6).read_bytes()
    assert image.step == 6 and image.encoded_image_string == sheet  # the run store's PNG, as it is
    assert Image.open(io.BytesIO(image.encoded_image_string)).size == (image.width, image.height)
    assert Image.open(io.BytesIO(sheet)).size == (image.width, image.height)


def test_resumed_run_shows_each_step_once_with_the_resumed_values(tmp_path):
    cfg = tiny(tmp_path, "broken")
    with pytest.raises(Killed):  # dies in iteration 5: steps 2, 3, 4 logged, checkpoint at 3
        _train(cfg, real_batches_fn=synthetic_batches(kill_after=9))
    _train(cfg, real_batches_fn=synthetic_batches())
    store = RunStore(cfg.run_uri)
    folder = store.tensorboard_dir() / tb.TRAIN

    files = sorted(Path(folder.path).glob("events.out.tfevents.*"))
    raw = [event.step for path in files for event in EventFileLoader(str(path)).Load()
           if any(v.tag == "iterations_per_s" for v in event.summary.value)]
    # Step 4 twice on disk: the crashed session's and the resumed one's.
    assert len(files) == 2 and raw == [2, 3, 4, 4, 6]

    acc = _read(folder)
    records = store.stats.read()
    for key in ("loss/D", "iterations_per_s"):  # throughput differs between sessions: the resumed value wins
        assert [(e.step, e.value) for e in acc.Scalars(key)] == [(r["iteration"], _f32(r[key])) for r in records]


def test_evaluate_node_writes_eval_figures(digits_shards, tmp_path):
    from biggan.eval.history import score_checkpoint
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    cfg = tiny_config(tmp_path / "runs", digits_shards)
    info = save_tiny_checkpoint(cfg, 100)
    store = RunStore(cfg.run_uri)
    record = score_checkpoint(store, info.name, cfg.eval, None)
    acc = _read(store.tensorboard_dir() / tb.EVAL)
    assert [(e.step, e.value) for e in acc.Scalars("eval/FID")] == [(100, _f32(record["metrics"]["FID"]))]
    assert [e.value for e in acc.Scalars("eval/IS")] == [_f32(record["metrics"]["IS"])]
    assert tb.eval_scalars({"FID": 3.0, "note": "x"}, 0.5) == {"eval_t0.5/FID": 3.0}


def test_object_store_writer_uploads_whole_snapshots_and_rotates(tmp_path, monkeypatch):
    """The object-store path on a local filesystem under an s3-like Location: every flush puts
    the whole file under its own name; past ROTATE_BYTES a new file starts; all points survive."""
    remote = Location(pafs.LocalFileSystem(), str(tmp_path / "bucket" / "run" / "tensorboard" / "train"), "s3")
    Path(remote.path).mkdir(parents=True)  # a local stand-in for a bucket needs its folder
    monkeypatch.setattr(tb, "ROTATE_BYTES", 600)
    writer = tb.EventWriter(remote, tb.TRAIN, purge_after=0)
    png = (tmp_path / "x.png")
    Image.new("RGB", (40, 30)).save(png)
    sizes = []
    for step in range(1, 31):
        writer.scalars(step, {"loss/D": float(step)})
        if step % 10 == 0:
            writer.png(tb.SAMPLES_TAG, step, png.read_bytes())
        writer.flush()
        sizes.append(sum(p.stat().st_size for p in Path(remote.path).iterdir()))
    writer.close()
    assert sizes == sorted(sizes)  # uploads only ever grow what readers see
    assert len(list(Path(remote.path).iterdir())) > 1  # rotated
    assert not any(p.name.startswith(".") for p in Path(remote.path).iterdir())  # no temp files left
    acc = _read(remote.path)
    assert [e.step for e in acc.Scalars("loss/D")] == list(range(1, 31))
    images = [(i.step, i.width, i.height) for i in acc.Images(tb.SAMPLES_TAG)]
    assert images == [(10, 40, 30), (20, 40, 30), (30, 40, 30)]


def test_a_failing_tensorboard_writer_warns_once_and_training_goes_on(tmp_path, caplog):
    cfg = tiny(tmp_path, "blocked", **{"train.iterations": 4, "train.checkpoint_every": 2, "train.sample_every": 1})
    run = Path(RunStore(cfg.run_uri).location.path)
    run.mkdir(parents=True)
    (run / tb.TENSORBOARD_DIR).write_text("a file where the folder should be")  # no event file can open
    result = _train(cfg, real_batches_fn=synthetic_batches())
    assert result.iteration == 4 and RunStore(cfg.run_uri).read_status()["state"] == "finished"
    warnings = [r for r in caplog.records if "TensorBoard" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("TensorBoard: could not open an event file")
    assert (warnings[0].name, warnings[0].levelno) == ("biggan.runs.tensorboard", logging.WARNING)
    assert [r["iteration"] for r in RunStore(cfg.run_uri).stats.read()] == [2, 4]
