"""The config tree: validation where it enters, presets, dotted overrides."""

import pytest
from pydantic import ValidationError

from biggan.config import ConfigError, ExperimentConfig, ModelConfig, ShardConfig, apply_overrides, parse_override
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
    with pytest.raises(ConfigError, match="unknown config key 'train.iteratons'; did you mean train.iterations"):
        apply_overrides(cfg, {"train.iteratons": 10})
    with pytest.raises(ConfigError, match="model.resolution = 48: resolution 48 is not supported"):
        apply_overrides(cfg, {"model.resolution": 48})
    with pytest.raises(ConfigError, match=r"train.betas = \[0.0, 1.0\]: each Adam beta must be in \[0, 1\)"):
        apply_overrides(cfg, {"train.betas": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="train.batch_size = -1: Input should be greater than or equal to 1"):
        apply_overrides(cfg, {"train.batch_size": -1})


def test_unknown_preset_lists_known_ones():
    with pytest.raises(KeyError, match="digits32"):
        get_preset("imagenet1024")


def test_presets_leave_the_class_count_to_the_data_and_name_no_run():
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.model.num_classes is None and cfg.name is None and cfg.preset == name
    assert get_preset("imagenet128").model.resolution == 128


def test_run_uri_joins_store_and_name():
    cfg = apply_overrides(get_preset("digits32"), {"name": "00001-digits32", "run_root": "s3://bucket/runs/"})
    assert cfg.run_uri == "s3://bucket/runs/00001-digits32"
    with pytest.raises(ConfigError, match="must be letters"):
        apply_overrides(cfg, {"name": "a/b"})


def test_a_section_cannot_be_replaced_by_one_value():
    from biggan.config import ConfigError, apply_overrides
    from biggan.presets import digits32

    with pytest.raises(ConfigError, match="train is a section"):
        apply_overrides(digits32(), {"train": {}})  # used to reset every train key to its default


def test_a_boolean_is_not_a_number():
    from biggan.config import ConfigError, apply_overrides
    from biggan.presets import digits32

    with pytest.raises(ConfigError, match="train.iterations = True: a number is expected"):
        apply_overrides(digits32(), {"train.iterations": True})  # used to train for 1 iteration
    assert apply_overrides(digits32(), {"train.ortho": False}).train.ortho is False
