"""A real S3 server (SeaweedFS) for the run store's tests: pyarrow round trip, refused
anonymous and wrong-key requests, loopback-only sockets, and Ray Train storage on it."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pyarrow import fs as pafs

from tests.support import sockets
from tests.support.seaweedfs import seaweed_s3

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with seaweed_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _names(fs, path: str, recursive: bool = False) -> list[str]:
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    return sorted(info.path for info in fs.get_file_info(selector))


@pytest.mark.slow
def test_pyarrow_round_trip(s3):
    fs = s3.filesystem()
    prefix = f"{s3.bucket}/roundtrip"
    stream = fs.open_output_stream(f"{prefix}/run/stats.jsonl")
    stream.write(b'{"iteration": 1}\n')
    # A multipart upload: nothing is visible until the stream is closed.
    assert fs.get_file_info(f"{prefix}/run/stats.jsonl").type == pafs.FileType.NotFound
    stream.close()
    with fs.open_output_stream(f"{prefix}/run/ckpt/G.pt") as out:
        out.write(b"weights")

    assert fs.open_input_stream(f"{prefix}/run/stats.jsonl").read() == b'{"iteration": 1}\n'
    assert _names(fs, prefix) == [f"{prefix}/run"]
    assert _names(fs, prefix, recursive=True) == [f"{prefix}/run", f"{prefix}/run/ckpt", f"{prefix}/run/ckpt/G.pt",
                                                  f"{prefix}/run/stats.jsonl"]
    fs.move(f"{prefix}/run/ckpt/G.pt", f"{prefix}/run/ckpt/G-final.pt")  # a copy + delete on S3
    assert _names(fs, f"{prefix}/run/ckpt") == [f"{prefix}/run/ckpt/G-final.pt"]
    fs.delete_dir(f"{prefix}/run")
    # No object is left. (Whether "run" itself still shows as a directory is not asserted:
    # SeaweedFS 4.48 may keep reporting emptied prefixes in delimiter listings, unlike AWS.)
    assert _names(fs, prefix, recursive=True) in ([], [f"{prefix}/run"])
    assert [n for n in _names(fs, prefix, recursive=True) if fs.get_file_info(n).type == pafs.FileType.File] == []
    with pytest.raises(FileNotFoundError):
        fs.open_input_stream(f"{prefix}/run/stats.jsonl")
    with pytest.raises(OSError, match="NO_SUCH_BUCKET|does not exist"):  # -s3.autoCreateBucket=false
        fs.open_output_stream("no-such-bucket/x").close()


@pytest.mark.slow
def test_requests_without_the_key_are_refused(s3):
    with s3.filesystem().open_output_stream(f"{s3.bucket}/secret.txt") as out:
        out.write(b"x")
    with pytest.raises(urllib.error.HTTPError) as plain:  # no signature at all
        urllib.request.urlopen(f"{s3.endpoint_url}/{s3.bucket}/secret.txt", timeout=10)
    assert plain.value.code == 403
    anonymous = s3.filesystem(access_key=None, secret_key=None, anonymous=True)
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        anonymous.open_input_stream(f"{s3.bucket}/secret.txt").read()
    wrong = s3.filesystem(secret_key="not-the-secret")
    with pytest.raises(OSError, match="SIGNATURE_DOES_NOT_MATCH"):
        wrong.get_file_info(pafs.FileSelector(s3.bucket))


@pytest.mark.slow
def test_weed_listens_on_loopback_only(s3):
    found = sockets.listeners(sockets.tree(s3.pid))
    assert {item.port for item in found} == set(s3.ports.values()), found  # nothing beyond the chosen ports
    assert sockets.not_on_loopback(found) == []


@pytest.mark.slow
def test_from_uri_takes_endpoint_and_key_from_the_environment(s3, monkeypatch):
    with s3.filesystem().open_output_stream(f"{s3.bucket}/env/x") as out:
        out.write(b"x")
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    fs, path = pafs.FileSystem.from_uri(s3.uri("env"))
    assert path == f"{s3.bucket}/env"
    assert _names(fs, path) == [f"{s3.bucket}/env/x"]


@pytest.mark.slow
def test_conditional_put_refuses_to_overwrite(s3):
    import boto3  # a dependency of biggan (TensorBoard on s3://): never skipped for want of it

    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name=s3.region)
    client.put_object(Bucket=s3.bucket, Key="marks/once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(client.exceptions.ClientError) as refused:
        client.put_object(Bucket=s3.bucket, Key="marks/once", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=s3.bucket, Key="marks/once")["Body"].read() == b"first"


@pytest.mark.slow
def test_run_store_on_s3(s3, monkeypatch):
    """The run store's local-disk behaviour, on an object store: checkpoints exist only with
    their manifest, damage is named, stats append, runs are numbered and listed."""
    import torch

    from biggan.runs import CheckpointDamaged, RunStore
    from biggan.runs.naming import list_runs, next_run_name
    from biggan.storage import location

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    root = location(s3.uri("store"))
    assert next_run_name(root, "digits32") == "00000-digits32"
    store = RunStore(root / "00000-digits32")
    store.write_options({"preset": "digits32", "train": {"iterations": 4}})
    lin = torch.nn.Linear(3, 3)
    for it in (1, 2):
        state = {"G": lin.state_dict(), "D": {}, "G_ema": {}, "opt_G": {}, "opt_D": {}, "iteration": it,
                 "rng": {}, "data": {}, "config": {}}
        store.save_checkpoint(state, {"loss/G": float(it)})
    assert [c.iteration for c in store.checkpoints()] == [1, 2]
    assert torch.equal(store.load_state(store.checkpoint("2"))["G"]["weight"], lin.weight)
    # A save that died before its manifest: objects without manifest.json are not a checkpoint.
    (root / "00000-digits32" / "checkpoint_00000003" / "state.pt").write_bytes(b"half")
    assert [c.iteration for c in store.checkpoints()] == [1, 2]
    # A state.pt cut short under a whole manifest is named, and the newest intact one is used.
    good = (store.location / "checkpoint_00000002" / "state.pt").read_bytes()
    (store.location / "checkpoint_00000002" / "state.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointDamaged, match="checkpoint_00000002/state.pt is cut short"):
        store.checkpoint("2")
    warnings: list[logging.LogRecord] = []
    catch = logging.Handler(logging.WARNING)
    catch.emit = warnings.append  # on the library's logger itself: Prefect's logging setup replaces root's handlers
    logging.getLogger("biggan").addHandler(catch)
    try:
        assert store.load_newest_intact()[0].iteration == 1
    finally:
        logging.getLogger("biggan").removeHandler(catch)
    assert ["checkpoint_00000002" in r.getMessage() for r in warnings] == [True]
    for it in (1, 2, 3):
        store.stats.append({"iteration": it})
    store.stats.keep(lambda r: r["iteration"] <= 2)
    store.stats.append({"iteration": 5})
    assert [r["iteration"] for r in RunStore(store.uri).stats.read()] == [1, 2, 5]
    store.write_status("finished", 4, 4)
    assert next_run_name(root, "digits32") == "00001-digits32"
    (summary,) = list_runs(root)
    assert (summary.name, summary.state, summary.iteration) == ("00000-digits32", "finished", 4)

