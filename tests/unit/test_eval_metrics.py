"""torch-fidelity integration: FID sanity on real shards, reference caching, offline weights."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from biggan.eval.classifier import train_classifier
from biggan.eval.features import dataset_classifier_extractor, inception_extractor
from biggan.eval.images import LazyShardImages, TensorImages
from biggan.eval.metrics import compute_metrics
from biggan.eval.reference import shard_fingerprint, shard_reference


@pytest.fixture(scope="module")
def classifier(digits_shards, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("classifier")
    return train_classifier(digits_shards["train"], out, epochs=2, seed=0)


def test_classifier_is_cached_by_folder(classifier):
    again = train_classifier(Path("/nonexistent"), classifier.path.parent, epochs=2)
    assert again.cached and again.weights_sha256 == classifier.weights_sha256


def test_fid_of_shards_against_themselves_is_zero_and_other_classes_larger(digits_shards, classifier, tmp_path):
    extractor = dataset_classifier_extractor(classifier.path)
    assert extractor.name.startswith("dataset-classifier-") and len(extractor.name) > len("dataset-classifier-")
    train = digits_shards["train"]
    same = compute_metrics(LazyShardImages(train), extractor, shard_reference(train), tmp_path, isc=False)
    low, high = list(range(5)), list(range(5, 10))
    other = compute_metrics(LazyShardImages(train, classes=low), extractor,
                            shard_reference(train, classes=high), tmp_path, isc=False)
    heldout = compute_metrics(LazyShardImages(digits_shards["val"]), extractor, shard_reference(train),
                              tmp_path, isc=False)
    assert abs(same["FID"]) < 1e-3 * max(1.0, other["FID"])
    # Same distribution (held-out split) is close; disjoint classes are far.
    assert other["FID"] > 5 * heldout["FID"]
    assert other["FID"] > 1.0


def test_cached_reference_equals_uncached(digits_shards, classifier, tmp_path):
    extractor = dataset_classifier_extractor(classifier.path)
    fake = TensorImages(LazyShardImages(digits_shards["val"], classes=[1, 7])._load())
    ref = shard_reference(digits_shards["train"])
    cache = tmp_path / "fidelity"
    first = compute_metrics(fake, extractor, ref, cache, kid=True)  # fills the cache
    assert any(p.name.startswith(ref.cache_name) and extractor.name in p.name for p in cache.iterdir())
    # A fresh reference object that is never read: the statistics must come from the cache.
    lazy = shard_reference(digits_shards["train"])
    second = compute_metrics(fake, extractor, lazy, cache, kid=True)
    assert lazy.images._images is None, "cached reference statistics should not touch the shards"
    uncached = compute_metrics(fake, extractor, shard_reference(digits_shards["train"]), None, kid=True)
    for key in ("FID", "IS", "KID"):
        assert second[key] == pytest.approx(first[key], rel=1e-6, abs=1e-9)
        assert uncached[key] == pytest.approx(first[key], rel=1e-5, abs=1e-7)


def test_fingerprint_changes_with_selection(digits_shards):
    train, val = digits_shards["train"], digits_shards["val"]
    assert shard_fingerprint(train) == shard_fingerprint(train)
    assert shard_fingerprint(train) != shard_fingerprint(val)
    assert shard_fingerprint(train) != shard_fingerprint(train, classes=[0, 1])


def test_inception_weights_by_path_without_network(tmp_path, monkeypatch):
    """A local weights file is loaded from its path; any network access fails the test."""
    import torch_fidelity
    import torch_fidelity.feature_extractor_inceptionv3 as fe_inception
    from torch_fidelity.utils import create_feature_extractor

    # Build a randomly initialised FeatureExtractorInceptionV3 state dict (no real weights offline).
    with monkeypatch.context() as patch:
        patch.setattr(fe_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(fe_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        torch.manual_seed(0)
        model = fe_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "pt_inception-random.pth"
    torch.save(model.state_dict(), weights)

    real_connect = socket.socket.connect

    def no_network(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)  # local (unix) sockets stay allowed

    monkeypatch.setattr(socket.socket, "connect", no_network)

    extractor = inception_extractor(weights)
    assert extractor.name.startswith("inception-v3-compat-")
    loaded = create_feature_extractor(extractor.name, ["2048"], cuda=False,
                                      feature_extractor_weights_path=str(weights), verbose=False)
    assert torch.equal(loaded.Conv2d_1a_3x3.conv.weight, model.Conv2d_1a_3x3.conv.weight)

    images = TensorImages(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    scores = torch_fidelity.calculate_metrics(
        input1=images, isc=True, isc_splits=1, feature_extractor=extractor.name,
        feature_extractor_weights_path=str(weights), cuda=False, verbose=False, cache=False, batch_size=4, save_cpu_ram=True)
    assert torch.isfinite(torch.tensor(scores["inception_score_mean"]))

    # Without a path, torch-fidelity would download: proves the guard above is live.
    with pytest.raises(Exception):
        fe_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])


def test_optional_kid_and_precision_recall(digits_shards, classifier, tmp_path):
    extractor = dataset_classifier_extractor(classifier.path)
    fake = TensorImages(LazyShardImages(digits_shards["val"], limit=120)._load())
    scores = compute_metrics(fake, extractor, shard_reference(digits_shards["train"]), tmp_path,
                             kid=True, prc=True)
    assert {"IS", "IS_std", "FID", "KID", "KID_std", "precision", "recall"} <= set(scores)
    assert 0.0 <= scores["precision"] <= 1.0 and 0.0 <= scores["recall"] <= 1.0


def test_streamed_reference_matches_loaded_images(digits_shards):
    from biggan.eval.images import load_shard_images

    stream = LazyShardImages(digits_shards["val"], batch_size=50)
    loaded, _labels, _keys = load_shard_images(digits_shards["val"])
    assert len(stream) == loaded.shape[0]
    assert torch.equal(stream[0], loaded[0])
    assert torch.equal(torch.stack([stream[i] for i in range(len(stream))]), loaded)
    assert torch.equal(stream[7], loaded[7])  # going back restarts the stream
    assert stream._images is None  # never held the whole set
    with pytest.raises(IndexError):
        stream[len(stream)]


def test_real_is_features_are_cached(digits_shards, classifier, tmp_path):
    extractor = dataset_classifier_extractor(classifier.path)
    ref = shard_reference(digits_shards["val"])
    first = compute_metrics(ref.images, extractor, None, tmp_path, fid=False, images_cache_name=ref.cache_name)
    again = shard_reference(digits_shards["val"])
    second = compute_metrics(again.images, extractor, None, tmp_path, fid=False, images_cache_name=again.cache_name)
    assert again.images._stream is None and again.images._images is None  # served from the cache
    assert second["IS"] == pytest.approx(first["IS"])
