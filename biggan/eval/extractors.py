"""Feature extractors registered with torch-fidelity, named so their caches never mix.

torch-fidelity keys its feature/statistics cache by the extractor's registered name. Two
classifiers trained on different shard sets (or two Inception weight files) must therefore
be registered under different names: we append the first 12 hex digits of the weights
file's sha256 to the name.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor

from biggan.config import ConfigError
from biggan.eval.classifier import load_classifier
from biggan.files import sha256_file

DATASET_CLASSIFIER_PREFIX = "dataset-classifier"
INCEPTION = "inception-v3-compat"


class DatasetClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity view of a `DatasetClassifier`: "features" for FID/KID/PR, "logits" for IS.

    torch-fidelity builds extractors as `cls(name, features_list, **all_its_kwargs)`; the
    classifier file arrives as `feature_extractor_weights_path`, like Inception's weights.
    """

    def __init__(
        self,
        name: str,  # registered name (carries the weights hash)
        features_list: list[str],  # subset of get_provided_features_list()
        feature_extractor_weights_path: str | None = None,  # classifier.pt written by train_classifier
        **_torch_fidelity_kwargs,  # the rest of calculate_metrics' kwargs, unused here
    ):
        super().__init__(name, features_list)
        vassert(feature_extractor_weights_path is not None,
                "the dataset classifier needs feature_extractor_weights_path (its classifier.pt)")
        self.model = load_classifier(Path(feature_extractor_weights_path))
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        # IS softmaxes the "isc" layer itself, so it must get logits (torch-fidelity metric_isc).
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {tuple(x.shape)}")
        feats, logits = self.model(x)
        out = {"features": feats.float(), "logits": logits.float()}
        return tuple(out[name] for name in self.features_list)


@dataclass(frozen=True)
class Extractor:
    """What calculate_metrics needs to use one extractor: its registered name and weights file."""

    name: str  # torch-fidelity registry name, unique per weights file
    weights_path: Path | None  # None only for the official (downloaded) Inception weights


_REGISTRY_LOCK = threading.Lock()


def _register(name: str, cls: type) -> None:
    # Registering is process-global in torch-fidelity and re-registering a name raises; the
    # pipeline's parallel nodes run as threads of one process, hence the lock.
    with _REGISTRY_LOCK:
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, cls)


def dataset_classifier_extractor(classifier_path: Path) -> Extractor:
    """Register the classifier at `classifier_path` under a name carrying its weights hash."""
    name = f"{DATASET_CLASSIFIER_PREFIX}-{sha256_file(Path(classifier_path))[:12]}"
    _register(name, DatasetClassifierExtractor)
    return Extractor(name=name, weights_path=Path(classifier_path))


def inception_extractor(weights_path: Path | None) -> Extractor:
    """torch-fidelity's Inception; a local weights file gets its own hash-named registration."""
    if weights_path is None:
        # torch-fidelity would download the weights at first use; say how to avoid that offline.
        return Extractor(name=INCEPTION, weights_path=None)
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise ConfigError(f"eval.inception_weights = {str(weights_path)!r}: the file does not exist")
    name = f"{INCEPTION}-{sha256_file(weights_path)[:12]}"
    _register(name, FeatureExtractorInceptionV3)
    return Extractor(name=name, weights_path=weights_path)


def extractor_module(extractor: Extractor, layers: list[str], device: torch.device) -> FeatureExtractorBase:
    """torch-fidelity's own feature extractor for `layers`, in eval mode on `device` (built on the
    CPU and moved, so any `cuda:N` works, not only torch-fidelity's `.cuda()`)."""
    kwargs = {"verbose": False}
    if extractor.weights_path is not None:
        kwargs["feature_extractor_weights_path"] = str(extractor.weights_path)
    module = create_feature_extractor(extractor.name, list(dict.fromkeys(layers)), cuda=False, **kwargs)
    return module.to(device)


def metric_layer(extractor: Extractor, metric: str) -> str:
    """The layer torch-fidelity uses for `metric` ("isc", "fid", "kid", "prc") with this extractor."""
    return FEATURE_EXTRACTORS_REGISTRY[extractor.name].get_default_feature_layer_for_metric(metric)
