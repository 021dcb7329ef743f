"""`biggan train --dry-run`, parameter validation of the train-biggan flow, `biggan sample`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import ConfigError
from biggan.experiment import resolve_experiment


@pytest.fixture()
def shard_root(tmp_path, digits_shards):
    """The session's digits shard sets (10 classes, 32 px) under a root of their own."""
    import shutil

    for split in ("train", "val"):
        shutil.copytree(digits_shards[split], tmp_path / "shards" / split)
    return tmp_path / "shards"


def test_dry_run_prints_resolved_config(shard_root, tmp_path):
    result = CliRunner().invoke(main, ["train", "--preset", "digits32", "--shards", str(shard_root),
                                       "--store", str(tmp_path / "runs"),
                                       "--workers", "0", "--set", "train.iterations=7", "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["train"]["iterations"] == 7 and cfg["cluster"]["num_workers"] == 0
    assert cfg["data"]["train_shards"] == str((shard_root / "train").resolve())
    assert cfg["data"]["val_shards"] == str((shard_root / "val").resolve())
    assert cfg["name"] == "00000-digits32" and cfg["run_root"] == str((tmp_path / "runs").resolve())
    assert (cfg["model"]["num_classes"], cfg["model"]["resolution"]) == (10, 32)  # from dataset.json
    assert not (tmp_path / "runs").exists()  # a dry run creates nothing


def test_bad_override_is_a_usage_error(shard_root):
    result = CliRunner().invoke(main, ["train", "--shards", str(shard_root), "--set", "train.nope=1", "--dry-run"])
    assert result.exit_code == 2 and "train.nope" in result.output


def test_flow_parameters_are_validated(shard_root, tmp_path):
    store = str(tmp_path / "runs")
    cfg = resolve_experiment("digits32", {"train.batch_size": 32}, str(shard_root / "train"), 2, False, store=store)
    assert cfg.train.batch_size == 32 and cfg.cluster.num_workers == 2
    assert cfg.data.val_shards == str((shard_root / "val").resolve())  # the sibling val/ is found
    with pytest.raises(ConfigError, match="neither dataset.json"):
        resolve_experiment("digits32", {}, str(tmp_path), None, None, store=store)
    with pytest.raises(KeyError, match="unknown preset"):
        resolve_experiment("nope", {}, str(shard_root), None, None, store=store)
    with pytest.raises(ConfigError, match="train.g_lr = -1"):
        resolve_experiment("digits32", {"train.g_lr": -1}, str(shard_root), None, None, store=store)


def test_model_shape_follows_the_data_and_conflicts_name_both_values(shard_root, tmp_path):
    store = str(tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"model.resolution is 128 \(preset imagenet128's\) but the shard set "
                                          r".* has 32 px images"):
        resolve_experiment("imagenet128", {}, str(shard_root), store=store)
    with pytest.raises(ConfigError, match=r"model.num_classes is 1000 \(set\) but .* has 10 classes"):
        resolve_experiment("digits32", {"model.num_classes": 1000}, str(shard_root), store=store)


def test_resume_refuses_changed_architecture_and_allows_safe_keys(shard_root, tmp_path):
    from biggan.runs import RunStore

    store = str(tmp_path / "runs")
    cfg = resolve_experiment("digits32", {}, str(shard_root), store=store, name="first")
    RunStore(cfg.run_uri).write_options(cfg.model_dump(mode="json"))
    assert resolve_experiment("digits32", {}, str(shard_root), store=store).name == "00000-digits32"
    with pytest.raises(ConfigError, match="run first already exists"):
        resolve_experiment("digits32", {}, str(shard_root), store=store, name="first")
    resumed = resolve_experiment(overrides={"train.iterations": 5000, "train.g_lr": 1e-4, "cluster.num_workers": 1},
                                 resume="first", store=store)
    assert (resumed.name, resumed.train.iterations, resumed.train.g_lr) == ("first", 5000, 1e-4)
    with pytest.raises(ConfigError, match="with model.ch, train.seed changed"):
        resolve_experiment(overrides={"model.ch": 16, "train.seed": 3}, resume="latest", store=store)
    result = CliRunner().invoke(main, ["train", "--resume", "first", "--store", store, "--set", "model.ch=16"])
    assert result.exit_code == 2 and "model.ch" in result.output


def test_sample_command_writes_class_folders_and_a_sheet(tmp_path):
    from biggan.config import apply_overrides
    from biggan.models import build_models
    from biggan.presets import digits32
    from biggan.runs import RunStore

    torch.manual_seed(0)
    cfg = apply_overrides(digits32(), {"model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16, "model.num_classes": 10,
                                       "train.standing_stats_batches": 1, "run_root": str(tmp_path), "name": "r"})
    G, D = build_models(cfg.model)
    opt = torch.optim.Adam(G.parameters())
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    store.save_checkpoint({
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(), "opt_G": opt.state_dict(),
        "opt_D": opt.state_dict(), "iteration": 5, "rng": {}, "data": {}, "config": cfg.model_dump(mode="json")}, {})
    result = CliRunner().invoke(main, ["sample", "--run", "r", "--store", str(tmp_path), "--classes", "0,3,7",
                                       "--per-class", "2",
                                       "--truncation", "0.5", "--out", str(tmp_path / "sheets")])
    assert result.exit_code == 0, result.output
    sheet = json.loads(result.output)["sheet"]
    assert (tmp_path / "sheets").is_dir() and sheet.endswith(".png")
    # OUT/<class index>/*.png, one 32x32 PNG per sample.
    from PIL import Image

    for cls in (0, 3, 7):
        files = sorted((tmp_path / "sheets" / str(cls)).glob("*.png"))
        assert [f.name for f in files] == ["00000.png", "00001.png"]
        assert Image.open(files[0]).size == (32, 32)
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir() if p.is_dir()) == ["0", "3", "7"]
    bad = CliRunner().invoke(main, ["sample", "--run", store.uri, "--classes", "12", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(main, ["sample", "--run", "nope", "--store", str(tmp_path), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "no run at" in missing.output and "Traceback" not in missing.output
