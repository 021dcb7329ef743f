"""`biggan train --dry-run`, parameter validation of the train-biggan flow, `biggan sample`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.train.launcher import experiment_from_params


@pytest.fixture()
def shard_root(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "shards" / split).mkdir(parents=True)
        (tmp_path / "shards" / split / "dataset.json").write_text("{}")
    return tmp_path / "shards"


def test_dry_run_prints_resolved_config(shard_root):
    result = CliRunner().invoke(main, ["train", "--preset", "digits32", "--shards", str(shard_root),
                                       "--workers", "0", "--set", "train.iterations=7", "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["train"]["iterations"] == 7 and cfg["cluster"]["num_workers"] == 0
    assert cfg["data"]["train_shards"] == str((shard_root / "train").resolve())
    assert cfg["data"]["val_shards"] == str((shard_root / "val").resolve())


def test_bad_override_is_a_usage_error(shard_root):
    result = CliRunner().invoke(main, ["train", "--shards", str(shard_root), "--set", "train.nope=1", "--dry-run"])
    assert result.exit_code == 2 and "train.nope" in result.output


def test_flow_parameters_are_validated(shard_root, tmp_path):
    cfg = experiment_from_params("digits32", {"train.batch_size": 32}, str(shard_root / "train"), 2, False)
    assert cfg.train.batch_size == 32 and cfg.cluster.num_workers == 2
    with pytest.raises(ValueError, match="neither dataset.json"):
        experiment_from_params("digits32", {}, str(tmp_path), None, None)
    with pytest.raises(KeyError, match="unknown preset"):
        experiment_from_params("nope", {}, str(shard_root), None, None)
    with pytest.raises(ValueError):
        experiment_from_params("digits32", {"train.g_lr": -1}, str(shard_root), None, None)


def test_sample_command_writes_class_folders_and_a_sheet(tmp_path):
    from biggan.config import apply_overrides
    from biggan.presets import digits32
    from biggan.train import checkpoint as ckpt
    from biggan.models import build_models

    torch.manual_seed(0)
    cfg = apply_overrides(digits32(), {"model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16,
                                       "train.standing_stats_batches": 1, "run_root": str(tmp_path), "name": "r"})
    G, D = build_models(cfg.model)
    opt = torch.optim.Adam(G.parameters())
    ckpt.save_checkpoint(cfg.run_dir / ckpt.checkpoint_name(5), {
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(), "opt_G": opt.state_dict(),
        "opt_D": opt.state_dict(), "iteration": 5, "rng": {}, "data": {}, "config": cfg.model_dump(mode="json")})
    result = CliRunner().invoke(main, ["sample", "--run", str(cfg.run_dir), "--classes", "0,3,7", "--per-class", "2",
                                       "--truncation", "0.5", "--out", str(tmp_path / "sheets")])
    assert result.exit_code == 0, result.output
    sheet = json.loads(result.output)["sheet"]
    assert (tmp_path / "sheets").is_dir() and sheet.endswith(".png")
    # Issue 6 layout: OUT/<class index>/*.png, one 32x32 PNG per sample.
    from PIL import Image

    for cls in (0, 3, 7):
        files = sorted((tmp_path / "sheets" / str(cls)).glob("*.png"))
        assert [f.name for f in files] == ["00000.png", "00001.png"]
        assert Image.open(files[0]).size == (32, 32)
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir() if p.is_dir()) == ["0", "3", "7"]
    bad = CliRunner().invoke(main, ["sample", "--run", str(cfg.run_dir), "--classes", "12", "--out", str(tmp_path)])
    assert bad.exit_code == 2
