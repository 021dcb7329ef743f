"""Config of evaluation (Sections 3.1, 4.2, 5) through torch-fidelity."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from biggan.config.base import Strict


class EvalConfig(Strict):
    """IS/FID, the truncation curve and the memorization check."""

    device: str = Field("auto", description="where evaluation runs: auto (the GPU when there is one), cpu, cuda[:N]")
    metrics: list[Literal["is", "fid", "kid", "pr"]] = Field(
        ["is", "fid"], min_length=1, description="metrics of the evaluate node: is, fid, kid, pr (precision/recall)")
    num_samples: int = Field(50_000, ge=2, description="generated samples per IS/FID")
    batch_size: int = Field(64, ge=1, description="generation and feature-extraction batch")
    standing_passes: int = Field(
        16, ge=1, description="forward passes of standing statistics (Appendix C.1: 'typically 100'; "
                              "BigGAN-PyTorch's default 16)")
    standing_batch: int = Field(64, ge=1, description="batch of each standing-statistics pass")
    truncation: float | None = Field(
        None, gt=0, description="None = plain N(0, I); else resample |z| beyond this threshold (Section 3.1)")
    reference: Literal["train", "val"] = Field("train", description="shards the reference statistics come from")
    feature_extractor: Literal["inception-v3-compat", "dataset-classifier"] = Field(
        "inception-v3-compat", description="IS/FID feature space: torch-fidelity's Inception or a classifier "
                                           "trained on the shards (Section 5.2)")
    inception_weights: Path | None = Field(
        None, description="local pt_inception-2015-12-05 weights file (offline machines)")
    reference_stats: Path | None = Field(
        None, description="published FID statistics (.npz with mu, sigma) to score against instead of the shards")
    verify_reference: bool = Field(
        True, description="check the reference shards' sha256 before their statistics are computed and cached")
    reference_rows: int = Field(
        50_000, ge=2, description="real feature rows kept for KID / precision-recall (they subsample anyway)")
    thresholds: list[float] = Field(
        [2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.04], description="truncation thresholds of the curve")
    classifier_epochs: int = Field(10, ge=1, description="epochs of the dataset classifier")
    nn_backbone: Literal["efficientnet-lite0", "pixel"] = Field(
        "efficientnet-lite0", description="feature space of the nearest-neighbour check besides pixels")
    nn_queries_per_class: int = Field(4, ge=1, description="generated samples per class in the NN check")
    nn_neighbours: int = Field(5, ge=1, description="neighbours shown per query")
    nn_train_limit: int | None = Field(
        None, ge=1, description="training images searched for neighbours; None = all of them")
    d_accuracy_samples: int = Field(
        10_000, ge=1, description="real images per split (and generated ones) D is scored on (Section 4.2)")
    seed: int = Field(0, description="seed of latents and labels of every evaluation")
    cache_dir: Path | None = Field(
        None, description="local cache of reference statistics; None = $BIGGAN_CACHE or ~/.cache/biggan")

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value):
            raise ValueError("truncation thresholds must be a non-empty list of positive numbers")
        return value
