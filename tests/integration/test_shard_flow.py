"""The real `shard-dataset` Prefect flow on the embedded demo data (threads, then Ray tasks)."""

from __future__ import annotations

import json

import pytest

from biggan.config import ShardConfig
from biggan.data.info import load_dataset_info
from biggan.data.loader import eval_loader

pytestmark = pytest.mark.slow


def test_shard_flow_jft_top_k_and_idempotent_rerun(prefect_harness, demo_data, tmp_path):
    from biggan_flows.shard import shard_dataset_flow

    cfg = ShardConfig(source="jft", manifest=demo_data.manifest, out=tmp_path / "jft", resolution=32,
                      top_labels=11, samples_per_shard=300)
    result = shard_dataset_flow(config=cfg)
    info = load_dataset_info(tmp_path / "jft")
    assert result["num_samples"] == info.num_samples == demo_data.num_train
    assert result["num_shards"] == 5 and result["reused_shards"] == 0
    assert info.multi_label and info.num_classes == 11 and "digit 8" not in info.classes  # least frequent dropped
    assert sum(info.label_frequencies.values()) == 2 * demo_data.num_train
    keys = [k for _, _, ks in eval_loader(tmp_path / "jft", 256) for k in ks]
    assert len(keys) == len(set(keys)) == demo_data.num_train
    before = json.loads((tmp_path / "jft" / "dataset.json").read_text())
    again = shard_dataset_flow(config=cfg)
    assert again["reused_shards"] == 5
    assert json.loads((tmp_path / "jft" / "dataset.json").read_text()) == before


def test_shard_flow_on_ray_task_runner(prefect_harness, ray_cluster, demo_data, tmp_path, digits_shards):
    from prefect_ray import RayTaskRunner

    from biggan_flows.runners import task_runner
    from biggan_flows.shard import shard_dataset_flow

    cfg = ShardConfig(source="imagenet", root=demo_data.imagenet_root, split="val", out=tmp_path / "val",
                      resolution=32, samples_per_shard=200, ray_address="auto")
    assert isinstance(task_runner(cfg.ray_address, threads=1), RayTaskRunner)
    result = shard_dataset_flow(config=cfg)
    assert result["num_samples"] == demo_data.num_val and result["num_shards"] == 2
    # Same config written by threads (the session fixture): byte-identical shards.
    assert load_dataset_info(tmp_path / "val").shards == load_dataset_info(digits_shards["val"]).shards
