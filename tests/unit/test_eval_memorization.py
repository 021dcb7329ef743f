"""Memorization check: exact neighbours of copies, the copy flag, D accuracy on a checkpoint."""

from __future__ import annotations

import json

import torch

from biggan.eval.images import load_shard_images
from biggan.eval.memorization import (
    EfficientNetBackbone,
    NeighbourInputs,
    classwise_neighbours,
    copy_summary,
    nearest_neighbour_check,
)


def test_copy_of_training_image_finds_itself_in_pixel_and_feature_space(digits_shards):
    torch.set_num_threads(1)
    train_x, train_y, _ = load_shard_images(digits_shards["train"], limit=120)
    picks = torch.tensor([3, 17, 64])
    copies, labels = train_x[picks].clone(), train_y[picks].clone()
    pixel_d, pixel_i = classwise_neighbours(copies.float().flatten(1), labels, train_x.float().flatten(1), train_y, 3)
    assert pixel_i[:, 0].tolist() == picks.tolist()
    assert torch.all(pixel_d[:, 0] == 0) and torch.all(pixel_d[:, 1] > 0)
    backbone = EfficientNetBackbone()
    feat_d, feat_i = classwise_neighbours(backbone(copies), labels, backbone(train_x), train_y, 2)
    assert feat_i[:, 0].tolist() == picks.tolist()
    assert torch.all(feat_d[:, 0] < 1e-3)


def test_copy_flag_fires_for_copies_and_not_for_new_images(digits_shards, tmp_path):
    train_x, train_y, _ = load_shard_images(digits_shards["train"], limit=300)
    val_x, val_y, _ = load_shard_images(digits_shards["val"], limit=200)
    copied = nearest_neighbour_check(
        NeighbourInputs(train_x[:100], train_y[:100], train_x, train_y, val_x[:100], val_y[:100]),
        ["pixel"], k=3, out_dir=tmp_path / "copied")
    assert copied["copying_flag"] is True
    assert copied["backbones"]["pixel"]["generated"]["median"] == 0.0
    assert (tmp_path / "copied" / "nn_pixel.png").stat().st_size > 0
    assert (tmp_path / "copied" / "nn_distances.png").stat().st_size > 0
    fresh = nearest_neighbour_check(
        NeighbourInputs(val_x[100:], val_y[100:], train_x, train_y, val_x[:100], val_y[:100]),
        ["pixel"], k=3, out_dir=tmp_path / "fresh")
    assert fresh["copying_flag"] is False


def test_copy_summary_rule():
    held = torch.tensor([4.0, 5.0, 6.0])
    assert copy_summary(torch.tensor([1.0, 2.0, 2.0]), held)["copying_flag"] is True
    assert copy_summary(torch.tensor([4.0, 5.0, 7.0]), held)["copying_flag"] is False


def test_memorization_check_of_a_checkpoint(digits_shards, tmp_path):
    from biggan.eval.memorization import memorization_check
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path / "runs", digits_shards)
    ckpt = save_tiny_checkpoint(cfg, iteration=10)
    from biggan.runs import RunStore

    summary = memorization_check(RunStore(cfg.run_uri), ckpt, num_fake=64)
    for split in ("train", "val"):
        acc = summary["d_accuracy"][split]
        assert 0.0 <= acc["accuracy"] <= 1.0
        assert acc["accuracy"] == 0.5 * (acc["real_accuracy"] + acc["fake_accuracy"])
    assert set(summary["backbones"]) == {"pixel"}
    assert json.loads((tmp_path / "runs" / "tiny" / "memorization" / "summary.json").read_text())["iteration"] == 10
