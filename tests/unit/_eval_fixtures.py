"""Helpers for the eval tests: a tiny randomly initialised checkpoint on the digits shards."""

from __future__ import annotations

from pathlib import Path

import torch

from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig
from biggan.runs import CheckpointInfo, RunStore


def tiny_config(run_root: Path, shards: dict, **eval_fields) -> ExperimentConfig:
    return ExperimentConfig(
        name="tiny",
        run_root=str(run_root),
        data=DataConfig(train_shards=str(shards["train"]), val_shards=str(shards["val"])),
        model=ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=16, shared_dim=8),
        train=TrainConfig(standing_stats_batches=2, batch_size=16),
        eval=EvalConfig(num_samples=40, batch_size=20, feature_extractor="dataset-classifier",
                        classifier_epochs=1, thresholds=[1.0, 0.5], nn_backbone="pixel",
                        nn_queries_per_class=2, nn_neighbours=3, **eval_fields),
    )


def save_tiny_checkpoint(cfg: ExperimentConfig, iteration: int, seed: int = 0) -> CheckpointInfo:
    """A run (options.json) with one checkpoint of random G/D, through the run store."""
    from biggan.models import build_models

    torch.manual_seed(seed)
    G, D = build_models(cfg.model)
    G_ema, _ = build_models(cfg.model)
    G_ema.load_state_dict(G.state_dict())
    state = {
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
        "opt_G": torch.optim.Adam(G.parameters()).state_dict(),
        "opt_D": torch.optim.Adam(D.parameters()).state_dict(),
        "iteration": iteration, "rng": {}, "data": {},
        "config": cfg.model_dump(mode="json"),
    }
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    return store.save_checkpoint(state, {"d_loss": 1.0})
