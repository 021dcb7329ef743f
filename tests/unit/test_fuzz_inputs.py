"""Property tests over what users hand us: every input ends in a result or one clear error (a
UserError, whose message is a single line), never another exception, never a half-written output."""

from __future__ import annotations

import json
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan.config import apply_overrides, parse_override
from biggan.data.info import load_dataset_info
from biggan.data.sources import jft_sources
from biggan.errors import UserError
from biggan.presets import digits32

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(err: BaseException) -> None:
    assert isinstance(err, UserError), f"{type(err).__name__}: {err}"
    assert str(err) and "\n" not in str(err), repr(str(err))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                           lambda inner: (st.lists(inner, max_size=3)
                                          | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
manifest_lines = st.one_of(
    st.builds(lambda p, labels: json.dumps({"path": p, "labels": labels}),
              st.text(max_size=12), st.lists(st.one_of(st.text(max_size=6), st.integers()), max_size=3)),
    json_values.map(json.dumps),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)


@FAST
@given(lines=st.lists(manifest_lines, max_size=8), top=st.none() | st.integers(min_value=1, max_value=4))
def test_jft_manifest_lines(tmp_path_factory, lines, top):
    manifest = tmp_path_factory.mktemp("m") / "manifest.jsonl"
    manifest.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    try:
        sources = jft_sources(manifest, top)
    except Exception as err:  # noqa: BLE001 - the property: only one-line user errors
        _one_line(err)
        return
    # Nothing is lost silently: every non-empty line is an item or a counted skip.
    lines_in_file = [raw for raw in manifest.read_bytes().split(b"\n") if raw.strip()]
    assert len(sources.items) + len(sources.skipped) == len(lines_in_file)


@FAST
@given(payload=st.one_of(json_values.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                         st.builds(lambda n: json.dumps({"source": "imagenet", "num_samples": n, "shards": []}),
                                   st.integers())))
def test_dataset_json_files(tmp_path_factory, payload):
    folder = tmp_path_factory.mktemp("set")
    (folder / "dataset.json").write_text(payload, errors="surrogateescape")
    try:
        load_dataset_info(str(folder))
    except Exception as err:  # noqa: BLE001
        _one_line(err)


keys = st.sampled_from(["train.iterations", "train.betas", "train.g_lr", "model.ch", "model.resolution", "eval.metrics",
                        "data.on_damaged_shard", "cluster.num_workers", "train.collapse.patience", "nope.key", "train"])
raw_values = st.one_of(st.text(alphabet=string.printable, max_size=12), st.integers().map(str),
                       st.floats(allow_nan=True).map(repr), st.sampled_from(["[0, 1]", "{a: 1}", "[", "null", "- x"]))


@FAST
@given(key=keys, raw=raw_values)
def test_set_values(key, raw):
    try:
        apply_overrides(digits32(), dict([parse_override(f"{key}={raw}")]))
    except Exception as err:  # noqa: BLE001
        _one_line(err)


@pytest.fixture(scope="module")
def intact_tar(digits_shards):
    from pathlib import Path

    return Path(digits_shards["val"])


@FAST
@given(cut=st.floats(min_value=0.0, max_value=0.999), flips=st.lists(st.floats(0, 0.999), max_size=3))
def test_truncated_or_garbled_tars(tmp_path_factory, intact_tar, cut, flips):
    import shutil

    from biggan.data.loader import eval_loader

    folder = tmp_path_factory.mktemp("tars") / "val"
    shutil.copytree(intact_tar, folder)
    tar = folder / "shard-000000.tar"
    data = bytearray(tar.read_bytes())
    for where in flips:
        data[int(where * len(data))] ^= 0x5A
    tar.write_bytes(bytes(data[: max(1, int(len(data) * (1 - cut)))]) if cut > 0.01 else bytes(data))
    try:
        count = sum(int(labels.numel()) for _x, labels, _k in eval_loader(str(folder), 64))
    except Exception as err:  # noqa: BLE001
        _one_line(err)
        return
    assert count == load_dataset_info(str(folder)).num_samples  # a result is always the whole set


@FAST
@given(cut=st.floats(min_value=0.0, max_value=0.999), flip=st.none() | st.floats(0, 0.999))
def test_truncated_or_garbled_checkpoints(tmp_path_factory, cut, flip):
    from biggan.runs import RunStore

    store = RunStore(tmp_path_factory.mktemp("runs") / "run")
    store.write_options({})
    lin = torch.nn.Linear(4, 4)
    store.save_checkpoint({"G": lin.state_dict(), "D": {}, "G_ema": {}, "opt_G": {}, "opt_D": {}, "iteration": 1,
                           "rng": {}, "data": {}, "config": {}}, {})
    path = store.location.local_path() / "checkpoint_00000001" / "state.pt"
    data = bytearray(path.read_bytes())
    if flip is not None:
        data[int(flip * len(data))] ^= 0x01
    path.write_bytes(bytes(data[: int(len(data) * (1 - cut))]) if cut > 0.01 else bytes(data))
    try:
        state = store.load_state(store.checkpoint("1"))
    except Exception as err:  # noqa: BLE001
        _one_line(err)
        return
    assert torch.equal(state["G"]["weight"], lin.weight)  # a result is always the intact checkpoint
