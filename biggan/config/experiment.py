"""The whole run: what `train-biggan` takes and what is written as a run's options.json."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from biggan.config.base import Location, Strict
from biggan.config.cluster import ClusterConfig, split_refusal
from biggan.config.data import DataConfig
from biggan.config.eval import EvalConfig
from biggan.config.model import ModelConfig
from biggan.config.train import TrainConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ExperimentConfig(Strict):
    """One training run."""

    name: str | None = Field(
        None, description="run name, unique in its store; None = a new numbered name (00007-<preset>)")
    preset: str | None = Field(None, description="the named preset this config started from")
    run_root: Location = Field(
        "runs", description="the run store: a local folder or a storage URI (s3://bucket/prefix)")
    data: DataConfig = Field(description="where shards are read from")
    model: ModelConfig = Field(ModelConfig(), description="G and D architecture")
    train: TrainConfig = Field(TrainConfig(), description="optimisation and training cadences")
    cluster: ClusterConfig = Field(ClusterConfig(), description="Ray workers and devices")
    eval: EvalConfig = Field(EvalConfig(), description="evaluation settings")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"run name {value!r} must be letters, digits, '.', '_' or '-' (no '/'), "
                             f"starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _batch_divides(self) -> ExperimentConfig:
        # Every worker count the run may have (a range: each of MIN..MAX) splits the global batch evenly.
        refusal = split_refusal(self.train.batch_size, self.train.accumulation, self.cluster.num_workers,
                                self.data.streams)
        if refusal is not None:
            raise ValueError(refusal)
        return self

    @property
    def run_uri(self) -> str:
        """Where this run lives: <run_root>/<name>."""
        if self.name is None:
            raise ValueError("the run has no name yet (biggan.experiment names new runs)")
        return f"{self.run_root.rstrip('/')}/{self.name}"
