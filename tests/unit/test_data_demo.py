"""The embedded demo data: both layouts, stratified held-out split, two labels per image."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from PIL import Image

from biggan.data.demo import wnid
from biggan.data.info import load_dataset_info
from biggan.data.sources import imagenet_sources, jft_sources


def test_demo_tree_and_manifest(demo_data):
    train = imagenet_sources(demo_data.imagenet_root, "train")
    val = imagenet_sources(demo_data.imagenet_root, "val")
    assert len(train.items) + len(val.items) == 1797
    assert train.classes == [wnid(d) for d in range(10)]
    assert train.class_names == [f"digit {d}" for d in range(10)]
    per_class_val = Counter(item.labels[0] for item in val.items)
    per_class_all = per_class_val + Counter(item.labels[0] for item in train.items)
    for digit, n in per_class_all.items():
        assert abs(per_class_val[digit] - 0.2 * n) <= 1  # stratified 20%
    assert not {i.key.split("/")[-1] for i in train.items} & {i.key.split("/")[-1] for i in val.items}
    img = Image.open(train.items[0].path)
    assert img.size == (32, 32) and img.mode == "L" and np.asarray(img).max() > 200
    lines = [json.loads(line) for line in demo_data.manifest.read_text().splitlines()]
    assert len(lines) == len(train.items) and all(len(line["labels"]) == 2 for line in lines)
    jft = jft_sources(demo_data.manifest)
    assert set(jft.classes) == {f"digit {d}" for d in range(10)} | {"even", "odd"}


def test_digits_shards_fixture(digits_shards):
    train, val = load_dataset_info(digits_shards["train"]), load_dataset_info(digits_shards["val"])
    assert train.num_samples + val.num_samples == 1797 and not train.skipped
    assert train.resolution == 32 and train.num_classes == 10 and train.classes == val.classes
