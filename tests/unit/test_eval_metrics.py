"""Streamed metrics: the same figures as torch-fidelity's own in-memory computation, reference
statistics cached by fingerprint, published statistics, offline Inception weights."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from torch.utils.data import Dataset

from biggan.data.loader import eval_loader
from biggan.eval.classifier import train_classifier
from biggan.eval.extractors import dataset_classifier_extractor, extractor_module, inception_extractor, metric_layer
from biggan.eval.feature_pass import RunningMoments, extract
from biggan.eval.metrics import METRICS, MetricInputs
from biggan.eval.reference import published_reference, shard_fingerprint, shard_reference


class Images(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _load(shard_dir) -> torch.Tensor:
    return torch.cat([images for images, _y, _k in eval_loader(shard_dir, 64, as_uint8=True)])


@pytest.fixture(scope="module")
def classifier(digits_shards, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("classifier")
    return train_classifier(str(digits_shards["train"]), out, epochs=2, seed=0)


@pytest.fixture(scope="module")
def extractor(classifier):
    return dataset_classifier_extractor(classifier.path)


def _layers(extractor) -> dict[str, str]:
    return {kind: metric_layer(extractor, kind) for kind in ("isc", "fid", "kid", "prc")}


def _reference(shards, extractor, cache: Path, rows=("features",), factory=None):
    module = factory or (lambda: extractor_module(extractor, ["features", "logits"], torch.device("cpu")))
    return shard_reference(str(shards), extractor.name, module, "features", rows, cache, torch.device("cpu"), 50, 5000)


def test_classifier_is_cached_by_folder(classifier):
    again = train_classifier("/nonexistent", classifier.path.parent, epochs=2)
    assert again.cached and again.weights_sha256 == classifier.weights_sha256


def test_running_moments_equal_numpy_mean_and_cov():
    rows = torch.randn(1000, 17, dtype=torch.float64) * 3 + 5
    moments = RunningMoments(17)
    for chunk in rows.split(37):
        moments.update(chunk)
    stats = moments.statistics()
    assert np.allclose(stats["mu"], rows.numpy().mean(0), rtol=1e-12, atol=1e-12)
    assert np.allclose(stats["sigma"], np.cov(rows.numpy(), rowvar=False), rtol=1e-10, atol=1e-12)


def test_streamed_metrics_equal_torch_fidelity_in_memory(digits_shards, extractor, tmp_path):
    """IS, FID, KID and precision/recall from one streamed pass equal torch-fidelity's own
    calculate_metrics on the same images held in memory. (Our FID mean is accumulated in float64,
    torch-fidelity's is numpy's float32 mean: about 5e-7 apart in absolute FID, so the stand-in
    for generated samples is a shifted distribution with a realistic FID, not a near-zero one.)"""
    val = [(x, y) for x, y, _k in eval_loader(digits_shards["val"], 64, as_uint8=True)]
    images, labels = torch.cat([x for x, _y in val]), torch.cat([y for _x, y in val])
    fake = images[labels < 6][:300]  # stands in for generated samples: six of the ten classes
    layers = _layers(extractor)
    module = extractor_module(extractor, ["features", "logits"], torch.device("cpu"))
    bank = extract(fake.split(64), module, torch.device("cpu"), moments=["features"], keep=["logits", "features"])
    reference = _reference(digits_shards["train"], extractor, tmp_path)
    inputs = MetricInputs(bank=bank, reference=reference, layers=layers)
    ours = {k: v for name in ("is", "fid", "kid", "pr") for k, v in METRICS[name].compute(inputs).items()}
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(_load(digits_shards["train"])), isc=True, fid=True, kid=True, prc=True,
        feature_extractor=extractor.name, feature_extractor_weights_path=str(extractor.weights_path), cuda=False,
        batch_size=64, verbose=False, cache=False, save_cpu_ram=True, kid_subset_size=min(1000, len(fake)))
    assert ours["IS"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["IS_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-5, abs=1e-9)
    assert ours["FID"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["KID"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5, abs=1e-8)
    assert (ours["precision"], ours["recall"]) == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-9)
    assert bank.count == len(fake) and set(bank.rows) == {"logits", "features"}


def test_fid_of_shards_against_themselves_is_zero_and_other_classes_larger(digits_shards, extractor, tmp_path):
    module = extractor_module(extractor, ["features"], torch.device("cpu"))
    train = _load(digits_shards["train"])
    labels = torch.cat([y for _x, y, _k in eval_loader(digits_shards["train"], 64, as_uint8=True)])
    reference = _reference(digits_shards["train"], extractor, tmp_path, rows=())

    def fid(images: torch.Tensor, ref) -> float:
        bank = extract(images.split(64), module, torch.device("cpu"), moments=["features"])
        return METRICS["fid"].compute(MetricInputs(bank, ref, {"fid": "features"}))["FID"]

    same = fid(train, reference)
    heldout = fid(_load(digits_shards["val"]), reference)
    high = extract(train[labels >= 5].split(64), module, torch.device("cpu"), moments=["features"])
    high_ref = type(reference)(name="high", statistics=high.statistics("features"), num_samples=high.count)
    other = fid(train[labels < 5], high_ref)
    assert abs(same) < 1e-3 * max(1.0, other)
    assert other > 5 * heldout and other > 1.0  # disjoint classes far, the held-out split close


def test_reference_statistics_are_cached_and_never_reread(digits_shards, extractor, tmp_path):
    first = _reference(digits_shards["train"], extractor, tmp_path)

    def must_not_build():
        raise AssertionError("a cached reference must not run the extractor over the shards again")

    second = _reference(digits_shards["train"], extractor, tmp_path, factory=must_not_build)
    assert np.array_equal(first.statistics["sigma"], second.statistics["sigma"])
    assert torch.equal(first.rows["features"], second.rows["features"]) and second.num_samples == first.num_samples
    assert first.name.startswith(f"ref-{shard_fingerprint(str(digits_shards['train']))}-{extractor.name}")


def test_published_statistics_give_the_same_fid_and_a_wrong_size_is_named(digits_shards, extractor, tmp_path):
    reference = _reference(digits_shards["train"], extractor, tmp_path, rows=())
    path = tmp_path / "published.npz"
    np.savez(path, mu=reference.statistics["mu"], sigma=reference.statistics["sigma"])
    published = published_reference(path, feature_dim=reference.statistics["mu"].shape[0])
    module = extractor_module(extractor, ["features"], torch.device("cpu"))
    bank = extract(_load(digits_shards["val"]).split(64), module, torch.device("cpu"), moments=["features"])
    a = METRICS["fid"].compute(MetricInputs(bank, reference, {"fid": "features"}))["FID"]
    b = METRICS["fid"].compute(MetricInputs(bank, published, {"fid": "features"}))["FID"]
    assert a == b
    with pytest.raises(ValueError, match="come from another feature extractor"):
        published_reference(path, feature_dim=2048)
    np.savez(tmp_path / "bad.npz", mean=reference.statistics["mu"])
    with pytest.raises(ValueError, match="has no 'mu' and 'sigma'"):
        published_reference(tmp_path / "bad.npz")


def test_fingerprint_changes_with_selection(digits_shards):
    train, val = str(digits_shards["train"]), str(digits_shards["val"])
    assert shard_fingerprint(train) == shard_fingerprint(train)
    assert shard_fingerprint(train) != shard_fingerprint(val)
    assert shard_fingerprint(train) != shard_fingerprint(train, classes=[0, 1])


def test_inception_weights_by_path_without_network(tmp_path, monkeypatch):
    """A local weights file is loaded from its path; any network access fails the test."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe_inception

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
    loaded = extractor_module(extractor, ["2048", "logits_unbiased"], torch.device("cpu"))
    assert torch.equal(loaded.Conv2d_1a_3x3.conv.weight, model.Conv2d_1a_3x3.conv.weight)
    bank = extract([torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)], loaded, torch.device("cpu"),
                   moments=["2048"], keep=["logits_unbiased"])
    assert bank.rows["logits_unbiased"].shape == (4, 1008) and bank.moments["2048"].count == 4

    # Without a path, torch-fidelity tries to download (stopped by the guard above, or earlier by
    # name resolution on an offline machine): the path is what kept the network out of it.
    import urllib.error

    with pytest.raises((AssertionError, urllib.error.URLError)):
        fe_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
