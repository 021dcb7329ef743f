"""One way into a checkpoint for evaluation: `open_session` opens it as every sampler does
(biggan.runs.opened) and returns a session holding the run's config (with eval overrides), G_ema
with standing statistics for any truncation, the raw G and D on demand, the feature extractor,
the reference, and every feature pass already made, so each node asks for what it needs and
nothing is computed twice."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biggan.config import ConfigError, EvalConfig, ExperimentConfig
from biggan.eval.classifier import RECIPE as CLASSIFIER_RECIPE
from biggan.eval.classifier import TrainedClassifier, train_classifier
from biggan.eval.extractors import (
    Extractor,
    dataset_classifier_extractor,
    extractor_module,
    inception_extractor,
    metric_layer,
)
from biggan.eval.feature_pass import FeatureBank, extract
from biggan.eval.reference import Reference, published_reference, shard_fingerprint, shard_reference
from biggan.files import sha256_file
from biggan.runs import RunStore
from biggan.runs.networks import generator_from_state
from biggan.runs.opened import OpenedCheckpoint, open_checkpoint, prepare_for_sampling
from biggan.sampling.images import generated_batches


def cache_dir(cfg: ExperimentConfig) -> Path:
    """Local cache of classifiers and reference statistics (torch-fidelity reads local files):
    eval.cache_dir, else $BIGGAN_CACHE, else ~/.cache/biggan. Keys are content fingerprints,
    so one cache serves every run and every store."""
    if cfg.eval.cache_dir is not None:
        return Path(cfg.eval.cache_dir).expanduser().resolve()
    return Path(os.environ.get("BIGGAN_CACHE") or Path.home() / ".cache" / "biggan").expanduser().resolve()


def classifier_key(cfg: ExperimentConfig, device: torch.device | str = "cpu") -> str:
    """The classifier's cache folder name: what decides its bytes (biggan.eval.classifier): the shard
    set's content, epochs, seed, the recipe's version and the device type (a GPU-trained file is not
    the CPU's; on one device type it is the same file whatever the thread count or process)."""
    return (f"{shard_fingerprint(cfg.data.train_shards)}-e{cfg.eval.classifier_epochs}-s{cfg.eval.seed}"
            f"-r{CLASSIFIER_RECIPE}-{torch.device(device).type}")


def ensure_classifier(cfg: ExperimentConfig, device: torch.device | str = "cpu") -> TrainedClassifier | None:
    """Train (once per shard set) the dataset classifier when the config uses it, else None."""
    if cfg.eval.feature_extractor != "dataset-classifier":
        return None
    folder = classifier_key(cfg, device)
    return train_classifier(train_shards=cfg.data.train_shards, out_dir=cache_dir(cfg) / "classifiers" / folder,
                            val_shards=cfg.data.val_shards, epochs=cfg.eval.classifier_epochs,
                            seed=cfg.eval.seed, device=device)


@dataclass
class EvalSession(OpenedCheckpoint):
    """An opened checkpoint (biggan.runs.opened: the run, the checkpoint, its config with eval
    overrides, eval.device, the state dicts) with what evaluation adds and keeps between nodes."""

    classifier: str | None = None  # dataset classifier file, when the config uses one
    _G: torch.nn.Module | None = field(default=None, repr=False)
    _G_truncation: object = field(default="unset", repr=False)  # truncation of _G's standing statistics
    _extractor: Extractor | None = field(default=None, repr=False)
    _reference: Reference | None = field(default=None, repr=False)
    _banks: dict = field(default_factory=dict, repr=False)  # (truncation, samples, metrics) -> FeatureBank
    _fingerprint: str | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- networks

    def generator(self, truncation: float | None, ema: bool = True) -> torch.nn.Module:
        """G_ema with standing statistics taken at `truncation`, one network kept for the session
        (its statistics recomputed only when the truncation changes); `ema=False`: a fresh trained G."""
        if not ema:
            return super().generator(truncation, ema=False)
        if self._G is None:
            self._G = generator_from_state(self.state, ema=True, channels_last=self.cfg.train.channels_last)
        if self._G_truncation != truncation:
            prepare_for_sampling(self._G, self.cfg, truncation, self.device)
            self._G_truncation = truncation
        return self._G

    def raw_generator(self) -> torch.nn.Module:
        """The trained G (what D was trained against), with untruncated standing statistics."""
        return self.generator(None, ema=False)

    # ---------------------------------------------------------------- features

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            ecfg = self.cfg.eval
            if ecfg.feature_extractor == "dataset-classifier":
                if self.classifier is None:
                    trained = ensure_classifier(self.cfg, self.device)
                    self.classifier = str(trained.path)
                self._extractor = dataset_classifier_extractor(Path(self.classifier))
            else:
                self._extractor = inception_extractor(ecfg.inception_weights)
        return self._extractor

    def layer(self, metric: str) -> str:
        return metric_layer(self.extractor, metric)

    def module(self, layers: list[str]) -> torch.nn.Module:
        return extractor_module(self.extractor, layers, self.device)

    def reference(self, row_layers: tuple[str, ...] = ()) -> Reference:
        """Statistics (and rows for KID / PR) of eval.reference's shards, or eval.reference_stats."""
        ecfg = self.cfg.eval
        if self._reference is not None and all(layer in self._reference.rows for layer in row_layers):
            return self._reference
        if ecfg.reference_stats is not None:
            if row_layers:
                raise ConfigError("KID and precision-recall need real feature rows; eval.reference_stats holds "
                                 "only mu and sigma: drop them from eval.metrics or the published statistics")
            self._reference = published_reference(ecfg.reference_stats)
        else:
            shards = self.cfg.data.train_shards if ecfg.reference == "train" else self.cfg.data.val_shards
            if shards is None:
                raise ConfigError("eval.reference is 'val' but data.val_shards is not set")
            fid = self.layer("fid")
            self._reference = shard_reference(shards, self.extractor.name, lambda: self.module([fid, *row_layers]),
                                              fid, row_layers, cache_dir(self.cfg), self.device, ecfg.batch_size,
                                              ecfg.reference_rows, ecfg.verify_reference)
        return self._reference

    def fingerprint(self) -> str:
        """sha256 of what makes scores comparable: the feature extractor's weights file (the dataset
        classifier, or local Inception weights; the extractor's name for torch-fidelity's download)
        and the reference statistics (mu and sigma, float64 bytes). Scores compare only when equal."""
        if self._fingerprint is None:
            weights = self.extractor.weights_path
            digest = hashlib.sha256()
            digest.update((sha256_file(weights) if weights is not None else self.extractor.name).encode())
            stats = self.reference().statistics
            for key in ("mu", "sigma"):
                digest.update(np.ascontiguousarray(stats[key], dtype=np.float64).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def features(self, truncation: float | None, moments: tuple[str, ...], keep: tuple[str, ...],
                 num_samples: int | None = None) -> FeatureBank:
        """One feature pass over `num_samples` samples of G_ema at `truncation` (cached)."""
        n = num_samples if num_samples is not None else self.cfg.eval.num_samples
        key = (truncation, n, moments, keep)
        if key not in self._banks:
            ecfg, mcfg = self.cfg.eval, self.cfg.model
            G = self.generator(truncation)
            batches = (images for images, _y in generated_batches(G, n, mcfg.num_classes, truncation, mcfg.latent,
                                                                  ecfg.batch_size, ecfg.seed, self.device))
            self._banks[key] = extract(batches, self.module([*moments, *keep]), self.device, moments, keep)
        return self._banks[key]


def open_session(
    run: str | RunStore,
    checkpoint: str | None = None,  # name or iteration; None = the one the run marked for evaluation
    eval_overrides: dict[str, Any] | EvalConfig | None = None,
    classifier: str | None = None,  # a trained dataset classifier file, to skip the cache lookup
) -> EvalSession:
    """The evaluation session of one checkpoint of a run."""
    opened = open_checkpoint(run, checkpoint, eval_overrides)
    return EvalSession(**{f.name: getattr(opened, f.name) for f in dataclasses.fields(opened)},
                       classifier=classifier)
