"""Property tests over what users hand us: every input ends in a result or one clear error (a
UserError, whose message is a single line), never another exception, never a half-written output."""

from __future__ import annotations

import json
import string

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
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


def _check_items(manifest, sources) -> None:
    """Every item is a line of the manifest: its key that line's path, its labels among the line's."""
    lines: dict[str, set[str]] = {}
    for raw in manifest.read_bytes().split(b"\n"):
        try:
            record = json.loads(raw.decode("utf-8"))
            lines.setdefault(record["path"], {str(label) for label in record["labels"]})
        except (ValueError, KeyError, TypeError):
            continue
    for item in sources.items:
        assert item.key in lines, item.key
        assert {sources.classes[i] for i in item.labels} <= lines[item.key], item
        assert item.path == str((manifest.parent / item.key).resolve())


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
    _check_items(manifest, sources)


good_paths = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n\r"), min_size=1,
                     max_size=10)
good_labels = st.lists(st.one_of(st.text(string.ascii_letters, min_size=1, max_size=4), st.integers(0, 99)),
                       min_size=1, max_size=3)


@FAST
@given(entries=st.dictionaries(good_paths, good_labels, min_size=1, max_size=6))
def test_well_formed_manifests_parse_whole(tmp_path_factory, entries):
    """Lines with a path and at least one label, each path once: every line is an item, with
    exactly its labels, and nothing is skipped."""
    manifest = tmp_path_factory.mktemp("m") / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps({"path": p, "labels": labels}) for p, labels in entries.items()),
                        encoding="utf-8")
    sources = jft_sources(manifest, None)
    assert sources.skipped == []
    assert [item.key for item in sources.items] == list(entries)
    for item in sources.items:
        assert {sources.classes[i] for i in item.labels} == {str(label) for label in entries[item.key]}
    _check_items(manifest, sources)


def test_a_manifest_parses_to_its_items_and_frequency_ordered_classes(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"path": "a.jpg", "labels": ["cat", 7]}\n\n{"path": "b/c.jpg", "labels": ["cat"]}\n'
                        '{"path": "d.jpg", "labels": []}\nnot json\n')
    sources = jft_sources(manifest, None)
    assert sources.classes == ["cat", "7"]  # most frequent first
    assert [(i.key, i.labels) for i in sources.items] == [("a.jpg", (0, 1)), ("b/c.jpg", (0,))]
    assert [s.reason for s in sources.skipped][0].startswith("bad manifest line") and len(sources.skipped) == 2
    assert [(i.key, i.labels) for i in jft_sources(manifest, 1).items] == [("a.jpg", (0,)), ("b/c.jpg", (0,))]


valid_infos = st.fixed_dictionaries(
    {"source": st.sampled_from(["imagenet", "jft"]), "num_samples": st.integers(0, 10**6),
     "num_found": st.integers(0, 10**6), "num_classes": st.integers(1, 9000), "resolution": st.integers(8, 512),
     "format": st.sampled_from(["png", "jpg"]), "multi_label": st.booleans(),
     "classes": st.lists(st.text(max_size=6), max_size=3), "seed": st.integers(0, 2**31),
     "shards": st.lists(st.fixed_dictionaries({"name": st.text(max_size=8), "num_samples": st.integers(0, 99),
                                               "sha256": st.text("0123456789abcdef", max_size=8)}), max_size=2),
     "skipped": st.lists(st.fixed_dictionaries({"path": st.text(max_size=6), "reason": st.text(max_size=6)}),
                         max_size=2)},
    optional={"split": st.none() | st.sampled_from(["train", "val"]),
              "label_frequencies": st.none() | st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=2)})


@FAST
@given(payload=st.one_of(json_values.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                         st.builds(lambda n: json.dumps({"source": "imagenet", "num_samples": n, "shards": []}),
                                   st.integers()),
                         valid_infos.map(json.dumps)))
def test_dataset_json_files(tmp_path_factory, payload):
    folder = tmp_path_factory.mktemp("set")
    (folder / "dataset.json").write_text(payload, errors="surrogateescape")
    try:
        info = load_dataset_info(str(folder))
    except Exception as err:  # noqa: BLE001
        _one_line(err)
        return
    assert info.model_dump(mode="json", exclude_unset=True) == json.loads(payload)  # read as written


@FAST
@given(fields=valid_infos)
def test_valid_dataset_json_files_load(tmp_path_factory, fields):
    folder = tmp_path_factory.mktemp("set")
    (folder / "dataset.json").write_text(json.dumps(fields))
    assert load_dataset_info(str(folder)).model_dump(mode="json", exclude_unset=True) == fields


keys = st.sampled_from(["train.iterations", "train.betas", "train.g_lr", "model.ch", "model.resolution", "eval.metrics",
                        "data.on_damaged_shard", "cluster.num_workers", "train.collapse.patience", "nope.key", "train"])
raw_values = st.one_of(st.text(alphabet=string.printable, max_size=12), st.integers().map(str),
                       st.floats(allow_nan=True).map(repr), st.sampled_from(["[0, 1]", "{a: 1}", "[", "null", "- x"]))


def _at(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[part]
    return data


def _same(held, given) -> bool:
    """What the config holds is what was given, as pydantic reads it: a tuple for a YAML list
    (train.betas), a number for a numeric string (YAML 1.1 reads `1e-4` as a string)."""
    if isinstance(held, (list, tuple)):
        return isinstance(given, (list, tuple)) and len(held) == len(given) and all(map(_same, held, given))
    if isinstance(held, (int, float)) and not isinstance(held, bool) and isinstance(given, str):
        try:
            return float(given) == held
        except ValueError:
            return False
    return held == given


def _check_applied(result, key: str, value) -> None:
    """The override is what the config now holds at `key` (for a whole section, each key given),
    and every other key is the preset's."""
    before, after = digits32().model_dump(), result.model_dump()
    if isinstance(value, dict):
        for sub, sub_value in value.items():
            assert _same(_at(after, f"{key}.{sub}"), sub_value), (key, sub, sub_value)
    else:
        assert _same(_at(after, key), value), (key, value, _at(after, key))
    section = key.split(".")[0]
    assert {k: v for k, v in after.items() if k != section} == {k: v for k, v in before.items() if k != section}


@FAST
@given(key=keys, raw=raw_values)
def test_set_values(key, raw):
    try:
        parsed_key, value = parse_override(f"{key}={raw}")
        result = apply_overrides(digits32(), {parsed_key: value})
    except Exception as err:  # noqa: BLE001
        _one_line(err)
        return
    _check_applied(result, parsed_key, value)


@pytest.mark.parametrize("text,expected", [
    ("train.iterations=5", 5), ("train.g_lr=1e-4", 1e-4), ("train.betas=[0, 0.9]", (0.0, 0.9)),
    ("model.ch= 16", 16), ("eval.metrics=[fid, kid]", ["fid", "kid"]), ("data.on_damaged_shard=skip", "skip"),
    ("train.collapse.patience=3", 3), ("cluster.num_workers=1", 1),
])
def test_valid_set_values_are_applied(text, expected):
    key, value = parse_override(text)
    result = apply_overrides(digits32(), {key: value})
    assert _at(result.model_dump(), key) == expected
    _check_applied(result, key, value)


@pytest.fixture(scope="module")
def intact_tar(digits_shards):
    from pathlib import Path

    return Path(digits_shards["val"])


@FAST
@given(cut=st.floats(min_value=0.0, max_value=0.999), flips=st.lists(st.floats(0, 0.999), max_size=3))
@example(cut=0.0, flips=[])  # the intact set: it must load
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
    intact = cut <= 0.01 and not flips
    try:
        count = sum(int(labels.numel()) for _x, labels, _k in eval_loader(str(folder), 64))
    except Exception as err:  # noqa: BLE001
        assert not intact, f"the intact shard set failed to load: {err}"
        _one_line(err)
        return
    assert count == load_dataset_info(str(folder)).num_samples  # a result is always the whole set


@FAST
@given(cut=st.floats(min_value=0.0, max_value=0.999), flip=st.none() | st.floats(0, 0.999))
@example(cut=0.0, flip=None)  # the intact checkpoint: it must load
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
        assert not (cut <= 0.01 and flip is None), f"the intact checkpoint failed to load: {err}"
        _one_line(err)
        return
    assert torch.equal(state["G"]["weight"], lin.weight)  # a result is always the intact checkpoint
