"""TensorBoard event files of a run on a real S3 server (SeaweedFS): a tiny in-process training
run with its store at s3://... leaves complete event files in <run>/tensorboard/train, which
TensorBoard's own reader loads from the s3:// URI (its boto3 client takes AWS_ENDPOINT_URL)."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator as ea

from biggan.runs import RunStore
from biggan.runs import tensorboard as tb
from tests.support.seaweedfs import seaweed_s3
from tests.unit.test_train_loop import _train, synthetic_batches, tiny


@pytest.mark.slow
def test_event_files_of_an_s3_run_land_in_the_store_and_tensorboard_reads_them(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    with seaweed_s3(tmp_path / "s3") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        cfg = tiny(tmp_path, "s3run", run_root=s3.uri("runs"))
        _train(cfg, real_batches_fn=synthetic_batches())
        store = RunStore(cfg.run_uri)
        assert store.uri.startswith("s3://")

        names = [loc.name for loc, _size in (store.tensorboard_dir() / tb.TRAIN).files()]
        assert len(names) == 1 and names[0].startswith("events.out.tfevents.") and names[0].endswith(".train")
        acc = ea.EventAccumulator(f"{store.uri}/{tb.TENSORBOARD_DIR}/{tb.TRAIN}",
                                  size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
        acc.Reload()
        records = store.stats.read()
        assert [(e.step, e.value) for e in acc.Scalars("loss/D")] == [
            (r["iteration"], torch.tensor(r["loss/D"], dtype=torch.float32).item()) for r in records]
        assert [i.encoded_image_string for i in acc.Images(tb.SAMPLES_TAG)] == [store.sample_sheet(6).read_bytes()]
