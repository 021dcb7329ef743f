"""TensorBoard event files of a run, read back with TensorBoard's own reader: object-store
snapshots and rotation."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pyarrow import fs as pafs
from tensorboard.backend.event_processing import event_accumulator as ea

from biggan.runs import tensorboard as tb
from biggan.storage import Location


def _read(folder) -> ea.EventAccumulator:
    """TensorBoard's reader over one run folder, keeping every point (0: no reservoir sampling)."""
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


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
    assert [(i.step, i.width, i.height) for i in acc.Images(tb.SAMPLES_TAG)] == [(10, 40, 30), (20, 40, 30), (30, 40, 30)]
