"""A study's grid: how it is written (--grid, a YAML file, a study preset), how its cells are named,
and every way a bad grid fails first: one line naming it, before any run starts (no folder is
written), from the library and from `biggan study`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from biggan.cli import main
from biggan.study.plan import plan_study, study_root
from biggan.study.presets import STUDY_PRESETS, build_spec
from biggan.study.spec import (
    StudyError,
    StudySpec,
    expand_cells,
    key_labels,
    load_grid_file,
    parse_grid_option,
    parse_grid_options,
    value_text,
)


def test_grid_options_read_each_value_as_yaml():
    assert parse_grid_option("train.batch_size=16,32,64") == ("train.batch_size", [16, 32, 64])
    assert parse_grid_option("train.g_lr = 0.0001, 2e-4") == ("train.g_lr", [0.0001, "2e-4"])  # YAML 1.1: a string
    assert parse_grid_option("train.betas=[0.0,0.999],[0.5,0.999]")[1] == [[0.0, 0.999], [0.5, 0.999]]
    assert parse_grid_option("model.latent=normal,bernoulli")[1] == ["normal", "bernoulli"]
    assert parse_grid_option("model.d_ch=null,8")[1] == [None, 8]
    for bad, words in (("train.batch_size", "key=value1"), ("train.batch_size=", "no values"),
                       ("model.ch=[8,", "not valid YAML")):
        with pytest.raises(StudyError, match=words):
            parse_grid_option(bad)
    with pytest.raises(StudyError, match="given twice"):
        parse_grid_options(["model.ch=8", "model.ch=16"])


def test_a_grid_file_holds_set_and_a_grid_or_cells(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("set: {train.iterations: 10}\ngrid:\n  train.batch_size: [16, 32]\n")
    assert load_grid_file(path) == {"overrides": {"train.iterations": 10}, "grid": {"train.batch_size": [16, 32]},
                                    "cells": []}
    path.write_text("cells:\n  - {name: narrow, model.ch: 8}\n  - {model.ch: 16}\n")
    assert load_grid_file(path)["cells"] == [{"name": "narrow", "model.ch": 8}, {"model.ch": 16}]
    path.write_text("gird: {model.ch: [8]}\n")
    with pytest.raises(StudyError, match="gird"):
        load_grid_file(path)
    with pytest.raises(StudyError, match="does not exist"):
        load_grid_file(tmp_path / "missing.yaml")


def test_cells_are_the_product_named_by_what_varies():
    spec = StudySpec(name="s", grid={"train.batch_size": [16, 32], "model.ch": [8], "train.g_lr": [1e-4, 2e-5]})
    names = [cell.name for cell in expand_cells(spec)]
    assert names == ["batch_size-16_g_lr-0.0001", "batch_size-16_g_lr-2e-05", "batch_size-32_g_lr-0.0001",
                     "batch_size-32_g_lr-2e-05"]  # model.ch has one value: in every cell, not in the names
    assert key_labels(["train.betas", "train.d_betas", "model.ch", "train.collapse.enabled", "model.enabled"]) == {
        "train.betas": "betas", "train.d_betas": "d_betas", "model.ch": "ch",
        "train.collapse.enabled": "collapse.enabled", "model.enabled": "model.enabled"}
    assert [value_text(v) for v in (None, True, 0.0002, [0.0, 0.999], "a/b c")] == [
        "none", "true", "0.0002", "0-0.999", "a-b-c"]
    explicit = StudySpec(name="s", cells=[{"name": "narrow", "model.ch": 8}, {"model.ch": 16}])
    assert [c.name for c in expand_cells(explicit)] == ["narrow", "ch-16"]


def _spec(**kwargs) -> StudySpec:
    return StudySpec(**{"name": "s1", **kwargs})


@pytest.fixture
def shards(digits_shards):
    return str(digits_shards["train"].parent)


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": {}}, "empty grid"),
    ({"grid": {"model.ch": []}}, "lists no values"),
    ({"grid": {"train.batchsize": [16, 32]}}, "unknown config key 'train.batchsize'; did you mean train.batch_size"),
    ({"grid": {"model.latent": ["normal", "gauss"]}}, "cell latent-gauss: model.latent = 'gauss'"),
    ({"grid": {"train.batch_size": [16, 33]}}, "cell batch_size-33: train.batch_size 33 is not divisible"),
    ({"grid": {"model.resolution": [32, 64]}}, "cell resolution-64: model.resolution is 64 (set) but the shard set"),
    ({"preset": "imagenet128", "grid": {"model.ch": [64, 96]}}, "cell ch-64: model.resolution is 128 (preset"),
    ({"grid": {"train.g_lr": [0.0001, 0.0001]}}, "grid key train.g_lr lists 0.0001 more than once"),
    ({"grid": {"train.g_lr": ["1e-4", 0.0001]}}, "cells g_lr-1e-4 and g_lr-0.0001 are the same experiment"),
    ({"grid": {"eval.num_samples": [100, 200]}}, "grid key eval.num_samples cannot vary in a study: every run"),
    ({"grid": {"data.train_shards": ["a", "b"]}}, "grid key data.train_shards cannot vary in a study: every run"),
    ({"grid": {"train.seed": [0, 1]}}, "grid key train.seed cannot vary in a study: seeds are the study's"),
    ({"grid": {"model.ch": [8, 16]}, "overrides": {"model.ch": 8}}, "model.ch is both a grid key and --set"),
    ({"grid": {"model.ch": [8, 16]}, "overrides": {"train.seed": 3}}, "--set train.seed: seeds are"),
    ({"grid": {"model.ch": [8, 16]}, "preset": "digits64"}, "unknown preset 'digits64'"),
    ({"grid": {"model.ch": [8]}, "cells": [{"model.ch": 8}]}, "a grid (a product of values) or explicit cells"),
    ({"cells": [{"name": "a", "model.ch": 8}, {"name": "a", "model.ch": 16}]}, "two cells are named a"),
    ({"cells": [{"name": "a/b", "model.ch": 8}]}, "cell name 'a/b'"),
])
def test_a_bad_grid_fails_first_in_one_line(shards, tmp_path, kwargs, message):
    with pytest.raises(StudyError) as caught:
        plan_study(_spec(shards=shards, **kwargs), str(tmp_path / "store"))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "store").exists()  # nothing written, nothing started


def test_spec_fields_refuse_bad_names_and_repeated_seeds():
    with pytest.raises(ValueError, match="study name 'a/b'"):
        StudySpec(name="a/b")
    with pytest.raises(ValueError, match="repeat a seed"):
        StudySpec(name="s", seeds=[0, 0])


def test_a_plan_names_every_run_and_resolves_it_in_the_study_folder(shards, tmp_path):
    store = str(tmp_path / "store")
    plan = plan_study(_spec(shards=shards, grid={"train.batch_size": [16, 32]}, seeds=[0, 5],
                            overrides={"train.iterations": 7}), store)
    assert plan.root == study_root(store, "s1") == f"{store}/s1" and plan.varied == ["train.batch_size"]
    assert [r.name for r in plan.runs] == ["batch_size-16-s0", "batch_size-16-s5", "batch_size-32-s0",
                                           "batch_size-32-s5"]
    run = plan.runs[3]
    assert run.overrides == {"train.iterations": 7, "train.batch_size": 32, "train.seed": 5}
    assert (run.config.name, run.config.run_root, run.config.train.seed, run.config.train.batch_size) == (
        "batch_size-32-s5", f"{store}/s1", 5, 32)
    assert run.config.model.num_classes == 10  # resolved against the shards
    assert not (tmp_path / "store").exists()


@pytest.fixture(scope="module")
def shards128(demo_data, tmp_path_factory):
    """The digits at 128 px (train/ and val/): the ImageNet presets' resolution, for their study presets."""
    from biggan.config import ShardConfig
    from biggan.data.shard import shard_dataset

    root = tmp_path_factory.mktemp("shards128")
    for split in ("train", "val"):
        shard_dataset(ShardConfig(source="imagenet", root=demo_data.imagenet_root, split="val", out=root / split,
                                  resolution=128, samples_per_shard=400))
    return str(root)


@pytest.mark.parametrize("name", sorted(STUDY_PRESETS))
def test_every_study_preset_plans(name, shards128, shards, tmp_path):
    spec = build_spec("p", study_preset=name, shards=shards if name.startswith("digits32") else shards128)
    plan = plan_study(spec, str(tmp_path))
    named = STUDY_PRESETS[name]()
    cells = len(named.cells) or len(list(plan.cells))
    assert len(plan.runs) == cells * named.seeds and plan.spec.preset == named.preset
    if name == "table1":
        rows = {r.cell: r.config for r in plan.runs}
        base, full = rows["b256-ch64"], rows["b2048-ch96-shared-hier-ortho"]
        assert (base.train.batch_size, base.model.ch, base.model.shared, base.model.hier, base.model.dim_z,
                base.train.ortho) == (256, 64, False, False, 128, False)
        assert (full.train.batch_size, full.model.ch, full.model.dim_z, full.train.ortho) == (2048, 96, 120, True)
    if name == "appendix-e-priors":
        assert sorted({r.config.model.latent for r in plan.runs}) == sorted(named.grid["model.latent"])
    if name == "appendix-h-d-beta1":
        assert {tuple(r.config.train.d_betas) for r in plan.runs} == {(b, 0.999) for b in (0, .1, .2, .3, .4, .5)}
        assert {tuple(r.config.train.betas) for r in plan.runs} == {(0.0, 0.999)}  # G keeps the paper's


def test_study_presets_take_the_command_line_on_top(shards):
    spec = build_spec("p", study_preset="digits32-batch", shards=shards, seeds=2, overrides={"model.ch": 4},
                      grid={"train.g_lr": [1e-4, 2e-4]})
    assert spec.seeds == [0, 1] and spec.overrides["model.ch"] == 4 and set(spec.grid) == {
        "train.batch_size", "train.g_lr"}
    with pytest.raises(StudyError, match="explicit cells take no --grid"):
        build_spec("p", study_preset="table1", grid={"model.ch": [8]})
    with pytest.raises(StudyError, match="unknown study preset 'table2'"):
        build_spec("p", study_preset="table2")


def test_biggan_study_dry_run_lists_the_runs_and_a_bad_grid_is_one_line(shards, tmp_path):
    store = str(tmp_path / "store")
    done = CliRunner().invoke(main, ["study", "--grid", "train.batch_size=16,32", "--seeds", "2", "--shards", shards,
                                     "--store", store, "--name", "bs", "--dry-run"])
    assert done.exit_code == 0, done.output
    listed = json.loads(done.output)
    assert [r["name"] for r in listed["runs"]] == ["batch_size-16-s0", "batch_size-16-s1", "batch_size-32-s0",
                                                   "batch_size-32-s1"]
    bad = CliRunner().invoke(main, ["study", "--grid", "train.batchsize=16,32", "--shards", shards, "--store", store])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "unknown config key 'train.batchsize'; did you mean train.batch_size" in bad.output.splitlines()[-1]
    resumed = CliRunner().invoke(main, ["study", "--resume", "bs", "--grid", "model.ch=8", "--store", store])
    assert resumed.exit_code == 2 and "drop --grid" in resumed.output
    missing = CliRunner().invoke(main, ["study", "--resume", "nope", "--store", store])
    assert missing.exit_code == 2 and "no study nope" in missing.output
    assert not (tmp_path / "store").exists()


def test_study_json_gives_back_the_spec_it_was_started_with(shards, tmp_path):
    from biggan.study.plan import read_spec, study_exists, write_spec

    store = str(tmp_path / "store")
    spec = _spec(shards=shards, cells=[{"model.ch": 4}, {"name": "wide", "model.ch": 16}], seeds=[0, 1])
    plan = plan_study(spec, store)
    assert not study_exists(store, "s1")
    write_spec(plan)
    assert study_exists(store, "s1") and read_spec(store, "s1") == spec  # the same spec again: a continuation
    written = json.loads((tmp_path / "store" / "s1" / "study.json").read_text())
    assert written["cell_names"] == ["ch-4", "wide"] and written["runs"] == ["ch-4-s0", "ch-4-s1", "wide-s0",
                                                                             "wide-s1"]
    with pytest.raises(StudyError, match="no study s2"):
        read_spec(store, "s2")
