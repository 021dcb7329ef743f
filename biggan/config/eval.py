"""Config of evaluation (Sections 3.1, 4.2, 5) through torch-fidelity."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from biggan.config.base import Strict


class EvalConfig(Strict):
    """IS/FID, the truncation curve and the memorization check."""

    num_samples: int = Field(50_000, ge=2, description="generated samples per IS/FID")
    batch_size: int = Field(64, ge=1, description="generation and feature-extraction batch")
    truncation: float | None = Field(
        None, gt=0, description="None = plain N(0, I); else resample |z| beyond this threshold (Section 3.1)")
    reference: Literal["train", "val"] = Field("train", description="shards the reference statistics come from")
    feature_extractor: Literal["inception-v3-compat", "dataset-classifier"] = Field(
        "inception-v3-compat", description="IS/FID feature space: torch-fidelity's Inception or a classifier "
                                           "trained on the shards (Section 5.2)")
    inception_weights: Path | None = Field(
        None, description="local pt_inception-2015-12-05 weights file (offline machines)")
    kid: bool = Field(False, description="also compute KID")
    precision_recall: bool = Field(False, description="also compute precision and recall")
    thresholds: list[float] = Field(
        [2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.04], description="truncation thresholds of the curve")
    classifier_epochs: int = Field(10, ge=1, description="epochs of the dataset classifier")
    nn_backbone: Literal["efficientnet-lite0", "pixel"] = Field(
        "efficientnet-lite0", description="feature space of the nearest-neighbour check besides pixels")
    nn_queries_per_class: int = Field(4, ge=1, description="generated samples per class in the NN check")
    nn_neighbours: int = Field(5, ge=1, description="neighbours shown per query")
    seed: int = Field(0, description="seed of latents and labels of every evaluation")
    cache_dir: Path | None = Field(
        None, description="local cache of reference statistics; None = $BIGGAN_CACHE or ~/.cache/biggan")

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value):
            raise ValueError("truncation thresholds must be a non-empty list of positive numbers")
        return value
