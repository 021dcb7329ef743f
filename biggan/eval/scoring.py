"""Score one checkpoint: EMA G + standing statistics -> samples -> torch-fidelity vs cached reference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from biggan.config import EvalConfig, ExperimentConfig
from biggan.eval.classifier import TrainedClassifier, train_classifier
from biggan.eval.features import Extractor
from biggan.eval.images import TensorImages, generate_images
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.networks import config_of, generator_from_state
from biggan.eval.metrics import compute_metrics, reference_dir, resolve_extractor
from biggan.eval.reference import Reference, shard_fingerprint, shard_reference


def cache_dir(cfg: ExperimentConfig) -> Path:
    """Local cache of classifiers and reference statistics (torch-fidelity reads local files):
    eval.cache_dir, else $BIGGAN_CACHE, else ~/.cache/biggan. Keys are content fingerprints,
    so one cache serves every run and every store."""
    if cfg.eval.cache_dir is not None:
        return Path(cfg.eval.cache_dir).expanduser().resolve()
    return Path(os.environ.get("BIGGAN_CACHE") or Path.home() / ".cache" / "biggan").expanduser().resolve()


def classifier_dir(cfg: ExperimentConfig) -> Path:
    """Cache folder of the dataset classifier: keyed by the train shards' fingerprint + recipe."""
    fp = shard_fingerprint(cfg.data.train_shards)
    return cache_dir(cfg) / "classifiers" / f"{fp}-e{cfg.eval.classifier_epochs}-s{cfg.eval.seed}"


def ensure_classifier(cfg: ExperimentConfig) -> TrainedClassifier | None:
    """Train (once per shard set) the dataset classifier when the config uses it, else None."""
    if cfg.eval.feature_extractor != "dataset-classifier":
        return None
    return train_classifier(
        train_shards=cfg.data.train_shards,
        out_dir=classifier_dir(cfg),
        val_shards=cfg.data.val_shards,
        epochs=cfg.eval.classifier_epochs,
        seed=cfg.eval.seed,
    )


@dataclass
class EvalContext:
    """Everything scoring needs besides the generator, resolved once per flow run."""

    cfg: ExperimentConfig
    extractor: Extractor
    reference: Reference
    cache_root: Path


def eval_context(cfg: ExperimentConfig, classifier_path: Path | None) -> EvalContext:
    return EvalContext(
        cfg=cfg,
        extractor=resolve_extractor(cfg.eval, classifier_path),
        reference=shard_reference(reference_dir(cfg)),
        cache_root=cache_dir(cfg) / "fidelity",
    )


def apply_overrides_to_eval(cfg: ExperimentConfig, eval_cfg: EvalConfig | None) -> ExperimentConfig:
    """The run's config with a caller's EvalConfig (None = the run's own)."""
    return cfg if eval_cfg is None else cfg.model_copy(update={"eval": eval_cfg})


def prepare_generator(G: torch.nn.Module, cfg: ExperimentConfig, truncation: float | None,
                      device: torch.device | str = "cpu") -> torch.nn.Module:
    """Appendix C.1 standing statistics: BN stats averaged over many forward passes at the
    sampling truncation, then used in eval mode."""
    from biggan.sampling.standing import standing_stats_

    G.to(device)
    standing_stats_(G, cfg.model.num_classes, cfg.train.standing_stats_batches, cfg.eval.batch_size,
                    truncation, device, prior=cfg.model.latent, seed=cfg.eval.seed)
    G.eval()
    return G


def score_generator(
    G: torch.nn.Module,  # EMA generator, standing stats already applied for `truncation`
    ctx: EvalContext,
    truncation: float | None,
    num_samples: int | None = None,  # None = cfg.eval.num_samples
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """IS/FID (+KID/PR when configured) of `num_samples` samples of G."""
    cfg = ctx.cfg
    n = num_samples if num_samples is not None else cfg.eval.num_samples
    images, _labels = generate_images(G, n, cfg.model.num_classes, truncation, cfg.model.latent,
                                      cfg.eval.batch_size, cfg.eval.seed, device)
    return compute_metrics(
        TensorImages(images), ctx.extractor, ctx.reference, ctx.cache_root,
        isc=True, fid=True, kid=cfg.eval.kid, prc=cfg.eval.precision_recall, batch_size=cfg.eval.batch_size,
    )


def evaluate_checkpoint(
    store: RunStore,
    info: CheckpointInfo,
    classifier_path: Path | None,  # dataset classifier (when the config uses it)
    eval_cfg: EvalConfig | None = None,  # None = the run's own EvalConfig
    device: torch.device | str = "cpu",
) -> dict:
    """{"checkpoint", "iteration", "truncation", "num_samples", "extractor", "metrics": {...}}."""
    state = store.load_state(info)
    G, run_cfg = generator_from_state(state, ema=True), config_of(state)
    cfg = apply_overrides_to_eval(run_cfg, eval_cfg)
    ctx = eval_context(cfg, classifier_path)
    prepare_generator(G, cfg, cfg.eval.truncation, device)
    metrics = score_generator(G, ctx, cfg.eval.truncation, device=device)
    return {
        "checkpoint": info.name,
        "iteration": info.iteration,
        "truncation": cfg.eval.truncation,
        "num_samples": cfg.eval.num_samples,
        "extractor": ctx.extractor.name,
        "reference": ctx.reference.cache_name,
        "metrics": metrics,
    }


def real_inception_score(ctx: EvalContext, shard_dir: str) -> float:
    """IS of real images with the same extractor (Table 2 compares against the val data's IS)."""
    ref = shard_reference(shard_dir)
    # Real images: their features go through the same fingerprint-keyed cache as the reference.
    return compute_metrics(ref.images, ctx.extractor, None, ctx.cache_root, isc=True, fid=False,
                           batch_size=ctx.cfg.eval.batch_size, images_cache_name=ref.cache_name)["IS"]


def load_run_config(run: str, eval_overrides: dict | None = None) -> ExperimentConfig:
    """The run's resolved config (its options.json) with dotted overrides of its eval section
    applied, e.g. {"num_samples": 500}."""
    from biggan.config import apply_overrides

    cfg = ExperimentConfig.model_validate(RunStore(run).read_options())
    if eval_overrides:
        cfg = cfg.model_copy(update={"eval": apply_overrides(cfg.eval, eval_overrides)})
    return cfg
