"""The config tree: validation where it enters, presets, dotted overrides."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from biggan.config import ExperimentConfig, ModelConfig, ShardConfig, apply_overrides, parse_override
from biggan.presets import PRESETS, get_preset


def test_unsupported_resolution_is_a_clear_error():
    with pytest.raises(ValidationError, match="resolution 100 is not supported"):
        ModelConfig(resolution=100)


def test_missing_imagenet_root_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="is not a folder"):
        ShardConfig(source="imagenet", root=tmp_path / "nope", out=tmp_path / "o", resolution=32)
    with pytest.raises(ValidationError, match="needs root"):
        ShardConfig(source="imagenet", out=tmp_path / "o", resolution=32)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        ShardConfig(source="jft", manifest=tmp_path / "m.jsonl", out=tmp_path / "o", resolution=64)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValidationError):
        ModelConfig(resolution=32, chanels=4)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_round_trips(name):
    cfg = get_preset(name)
    again = ExperimentConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg


def test_paper_defaults_in_imagenet128():
    cfg = get_preset("imagenet128")
    assert (cfg.model.ch, cfg.model.dim_z, cfg.model.shared_dim) == (96, 120, 128)
    assert cfg.model.shared and cfg.model.hier and cfg.train.ortho
    assert (cfg.train.g_lr, cfg.train.d_lr, cfg.train.betas, cfg.train.d_steps) == (5e-5, 2e-4, (0.0, 0.999), 2)
    assert (cfg.train.batch_size, cfg.train.ortho_beta, cfg.train.ema_decay) == (2048, 1e-4, 0.9999)
    assert cfg.model.sn_eps == 1e-4 and cfg.model.bn_eps == 1e-4


def test_ablation_toggles_are_preset_arguments():
    base = get_preset("imagenet128", shared=False, hier=False, ortho=False, ch=64)
    assert (base.model.shared, base.model.hier, base.train.ortho, base.model.ch) == (False, False, False, 64)


def test_overrides_are_validated_and_typed():
    cfg = get_preset("digits32")
    out = apply_overrides(cfg, dict([parse_override("train.iterations=10"), parse_override("model.hier=false")]))
    assert out.train.iterations == 10 and out.model.hier is False
    with pytest.raises(KeyError, match="train.iteratons"):
        apply_overrides(cfg, {"train.iteratons": 10})
    with pytest.raises(ValidationError):
        apply_overrides(cfg, {"model.resolution": 48})


def test_unknown_preset_lists_known_ones():
    with pytest.raises(KeyError, match="digits32"):
        get_preset("imagenet1024")


def test_run_dir_is_absolute():
    cfg = get_preset("digits32")
    assert cfg.run_dir.is_absolute() and cfg.run_dir.name == "digits32"
    assert Path(cfg.run_root) == Path("runs")
