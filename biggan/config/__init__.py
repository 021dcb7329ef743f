"""The one typed configuration tree of biggan.

Every entry point (CLI, Prefect flow parameters, Ray worker) validates a dict into these
models once, where it enters; nothing deeper in the code looks values up by string. Defaults
are the paper's values (Brock et al. 2019, Appendix C) unless a field's description says
otherwise; every field has a description (shown by `biggan config` and in Prefect's UI form).
Named experiments live in `biggan.presets`, not here.
"""

from biggan.config.base import SUPPORTED_RESOLUTIONS, Strict, check_resolution
from biggan.config.cluster import ClusterConfig
from biggan.config.data import DataConfig, ShardConfig
from biggan.config.eval import EvalConfig
from biggan.config.experiment import ExperimentConfig
from biggan.config.model import ModelConfig
from biggan.config.overrides import ConfigError, apply_overrides, describe_validation_error, parse_override
from biggan.config.train import CollapseConfig, TrainConfig

__all__ = [
    "SUPPORTED_RESOLUTIONS", "Strict", "check_resolution", "ClusterConfig", "DataConfig", "ShardConfig",
    "EvalConfig", "ExperimentConfig", "ModelConfig", "ConfigError", "apply_overrides",
    "describe_validation_error", "parse_override", "CollapseConfig", "TrainConfig",
]
