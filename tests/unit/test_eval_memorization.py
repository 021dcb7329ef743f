"""Memorization check: streamed nearest neighbours equal brute force, a copy finds itself at
distance 0, the copy flag, and D's accuracy on real images as the headline."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from biggan.data.loader import eval_loader
from biggan.eval.backbones import EfficientNetBackbone
from biggan.eval.memorization import (
    copy_summary,
    d_accuracy_generated,
    d_accuracy_real,
    nearest_neighbour_check,
    train_chunks,
)
from biggan.eval.neighbours import NeighbourSearch, brute_force_neighbours


def _load(shard_dir, limit=None):
    xs, ys = [], []
    for x, y in train_chunks(str(shard_dir), 64, limit):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def test_streamed_neighbours_equal_brute_force():
    torch.manual_seed(0)
    bank, bank_labels = torch.randn(700, 24), torch.randint(0, 5, (700,))
    queries, query_labels = torch.randn(60, 24), torch.randint(0, 6, (60,))  # class 5 has no bank items
    search = NeighbourSearch(queries, query_labels, k=4)
    for start in range(0, 700, 97):  # uneven chunks
        search.update(bank[start:start + 97], bank_labels[start:start + 97])
    distances, indices = search.result()
    want_d, want_i = brute_force_neighbours(queries, query_labels, bank, bank_labels, 4)
    assert torch.equal(indices, want_i)
    assert torch.allclose(distances, want_d, rtol=0, atol=1e-12, equal_nan=False)
    assert torch.isinf(distances[query_labels == 5]).all() and (indices[query_labels == 5] == -1).all()


def test_copy_of_training_image_finds_itself_in_pixel_and_feature_space(digits_shards):
    torch.set_num_threads(1)
    train_x, train_y = _load(digits_shards["train"], limit=120)
    picks = torch.tensor([3, 17, 64])
    copies, labels = train_x[picks].clone(), train_y[picks].clone()
    pixels = NeighbourSearch(copies.flatten(1), labels, k=3, scale=1 / 255)
    for start in range(0, 120, 50):
        pixels.update(train_x[start:start + 50].flatten(1), train_y[start:start + 50])
    pixel_d, pixel_i = pixels.result()
    assert pixel_i[:, 0].tolist() == picks.tolist()
    assert torch.all(pixel_d[:, 0] == 0) and torch.all(pixel_d[:, 1] > 0)  # exactly 0, not rounding error
    backbone = EfficientNetBackbone()
    features = NeighbourSearch(backbone(copies), labels, k=2)
    features.update(backbone(train_x), train_y)
    feat_d, feat_i = features.result()
    assert feat_i[:, 0].tolist() == picks.tolist() and torch.all(feat_d[:, 0] < 1e-3)


def test_copy_flag_fires_for_copies_and_not_for_new_images(digits_shards, tmp_path):
    train_x, train_y = _load(digits_shards["train"], limit=300)
    val_x, val_y = _load(digits_shards["val"], limit=200)

    def check(generated, generated_labels, out):
        chunks = train_chunks(str(digits_shards["train"]), 64, 300)
        return nearest_neighbour_check(generated, generated_labels, val_x[:100], val_y[:100], chunks, ["pixel"],
                                       k=3, out_dir=tmp_path / out, device=torch.device("cpu"))

    copied = check(train_x[:100], train_y[:100], "copied")
    assert copied["copying_flag"] is True
    assert copied["backbones"]["pixel"]["generated"]["median"] == 0.0
    assert copied["backbones"]["pixel"]["train_images"] == 300
    assert (tmp_path / "copied" / "nn_pixel.png").stat().st_size > 0
    assert (tmp_path / "copied" / "nn_distances.png").stat().st_size > 0
    fresh = check(val_x[100:], val_y[100:], "fresh")
    assert fresh["copying_flag"] is False


def test_copy_summary_rule():
    held = torch.tensor([4.0, 5.0, 6.0])
    assert copy_summary(torch.tensor([1.0, 2.0, 2.0]), held)["copying_flag"] is True
    assert copy_summary(torch.tensor([4.0, 5.0, 7.0]), held)["copying_flag"] is False


class EvenClassesAreReal(nn.Module):
    """A judge with a known answer: real for even class labels, fake for odd ones."""

    def forward(self, images, labels):
        return torch.where(labels % 2 == 0, 1.0, -1.0) + 0 * images.mean(dim=(1, 2, 3))


def test_d_accuracy_counts_real_and_generated_images_apart(digits_shards):
    D = EvenClassesAreReal()
    labels = torch.cat([y for _x, y, _k in eval_loader(str(digits_shards["val"]), 64, as_uint8=True)])[:150]
    real = d_accuracy_real(D, str(digits_shards["val"]), 150, 64, "cpu")
    assert real == {"accuracy": int((labels % 2 == 0).sum()) / 150, "count": 150}

    class ClassImages(nn.Module):
        dim_z = 4

        def forward(self, z, y):
            return torch.zeros(y.shape[0], 3, 8, 8)

    generated = d_accuracy_generated(D, ClassImages(), 100, 10, "normal", 32, 0, "cpu")
    assert generated["count"] == 100 and generated["accuracy"] == pytest.approx(0.5)  # balanced labels: half odd


def test_memorization_check_reports_real_image_accuracy_as_the_headline(digits_shards, tmp_path):
    from biggan.eval.memorization import memorization_check
    from biggan.runs import RunStore
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path / "runs", digits_shards, d_accuracy_samples=64)
    save_tiny_checkpoint(cfg, iteration=10)
    summary = memorization_check(RunStore(cfg.run_uri), None, None)
    acc = summary["d_accuracy"]
    assert acc["train_real"]["count"] == acc["val_real"]["count"] == acc["generated"]["count"] == 64
    assert acc["train_minus_val"] == acc["train_real"]["accuracy"] - acc["val_real"]["accuracy"]
    assert "accuracy" not in acc  # no average of real and generated
    assert set(summary["backbones"]) == {"pixel"}
    written = json.loads((tmp_path / "runs" / "tiny" / "memorization" / "summary.json").read_text())
    assert written["iteration"] == 10 and written["d_accuracy"]["train_real"] == acc["train_real"]
