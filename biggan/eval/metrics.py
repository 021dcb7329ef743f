"""IS / FID (KID, precision-recall as options) through torch-fidelity's own metric code.

Section 3 / Appendix C.1: scores are of samples from the EMA generator after "standing
statistics" (BN statistics accumulated over many forward passes, then used in eval mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch.utils.data import Dataset

from biggan.config import EvalConfig, ExperimentConfig
from biggan.eval.features import Extractor, dataset_classifier_extractor, inception_extractor
from biggan.eval.reference import Reference

# torch-fidelity's result keys -> ours (short, stable column names for tables and history).
_KEYS = {
    "inception_score_mean": "IS",
    "inception_score_std": "IS_std",
    "frechet_inception_distance": "FID",
    "kernel_inception_distance_mean": "KID",
    "kernel_inception_distance_std": "KID_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
}


def compute_metrics(
    images: Dataset,  # uint8 3xHxW images (generated, or real for a baseline)
    extractor: Extractor,
    reference: Reference | None,  # None: IS only
    cache_root: Path | None,  # torch-fidelity cache folder for the reference; None = no caching
    isc: bool = True,
    fid: bool = True,
    kid: bool = False,
    prc: bool = False,
    batch_size: int = 64,
    isc_splits: int = 10,
    images_cache_name: str | None = None,  # cache key of `images` when they are real (never for samples)
) -> dict[str, float]:
    """Scores of `images` (vs `reference` for FID/KID/PR), keys IS, IS_std, FID, KID, ..."""
    needs_reference = fid or kid or prc
    if needs_reference and reference is None:
        raise ValueError("FID/KID/precision-recall need a reference image set")
    n = len(images)
    kwargs: dict[str, Any] = dict(
        input1=images,
        isc=isc,
        fid=fid,
        kid=kid,
        prc=prc,
        feature_extractor=extractor.name,
        feature_extractor_weights_path=str(extractor.weights_path) if extractor.weights_path else None,
        batch_size=batch_size,
        cuda=torch.cuda.is_available(),
        verbose=False,
        # IS splits cannot exceed the sample count (torch-fidelity would divide by zero).
        isc_splits=max(1, min(isc_splits, n)),
        cache=cache_root is not None,
        cache_root=str(cache_root) if cache_root is not None else None,
        save_cpu_ram=True,
    )
    if images_cache_name is not None and cache_root is not None:
        kwargs["input1_cache_name"] = images_cache_name
    if kid:
        # torch-fidelity's default subset (1000) must fit both sides; len() of the reference
        # would read the shards, so its size comes from dataset.json when known.
        ref_size = reference.size_hint if reference.size_hint is not None else len(reference.images)  # type: ignore[union-attr]
        kwargs["kid_subset_size"] = min(1000, n, ref_size)
    if needs_reference:
        kwargs["input2"] = reference.images  # type: ignore[union-attr]
        # Only the reference is cached: generated samples change with every checkpoint.
        kwargs["input2_cache_name"] = reference.cache_name if cache_root is not None else None
    raw = torch_fidelity.calculate_metrics(**kwargs)
    return {_KEYS.get(key, key): float(value) for key, value in raw.items()}


def resolve_extractor(
    eval_cfg: EvalConfig,
    classifier_path: Path | None,  # classifier.pt from train_classifier, for "dataset-classifier"
) -> Extractor:
    """The extractor the config asks for, registered with torch-fidelity."""
    if eval_cfg.feature_extractor == "dataset-classifier":
        if classifier_path is None:
            raise ValueError("feature_extractor 'dataset-classifier' needs a trained classifier (train it first)")
        return dataset_classifier_extractor(Path(classifier_path))
    return inception_extractor(eval_cfg.inception_weights)


def reference_dir(cfg: ExperimentConfig) -> str:
    """Shards the reference statistics come from (EvalConfig.reference: train or val)."""
    if cfg.eval.reference == "val":
        if cfg.data.val_shards is None:
            raise ValueError("eval.reference is 'val' but data.val_shards is not set")
        return cfg.data.val_shards
    return cfg.data.train_shards
