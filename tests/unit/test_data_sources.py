"""Source listing: ImageNet class order, flat val ground truth (both forms), JFT top-K."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from biggan.config import ShardConfig
from biggan.data.sources import imagenet_sources, jft_sources
from tests.unit._data_helpers import unique_image, write_manifest, write_tree

WNIDS = ["n02000002", "n01000001", "n03000003"]  # deliberately unsorted on disk creation


def test_imagenet_class_index_is_sorted_wnid_position(tmp_path):
    write_tree(tmp_path, WNIDS, per_class=2)
    (tmp_path / "train" / "n01000001" / "notes.txt").write_text("not an image, not counted")
    src = imagenet_sources(tmp_path, "train")
    assert src.classes == sorted(WNIDS)
    assert len(src.items) == 6
    write_tree(tmp_path, ["n01000001", "n09999999"], per_class=1, split="val")
    val = imagenet_sources(tmp_path, "val")  # a val folder that is no training class: counted skip
    assert len(val.items) == 1 and [s.reason for s in val.skipped] == ["folder n09999999 is not a training class"]
    for item in src.items:
        wnid = item.key.split("/")[1]
        assert item.labels == (sorted(WNIDS).index(wnid),)


def _flat_val(root, names):
    (root / "val").mkdir(parents=True)
    for i, name in enumerate(names):
        unique_image(i).save(root / "val" / f"{name}.JPEG")


def test_flat_val_with_loc_solution_csv(tmp_path):
    write_tree(tmp_path, WNIDS, per_class=1)
    _flat_val(tmp_path, ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003"])
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n03000003 1 2 3 4 n03000003 5 6 7 8\n"
        "ILSVRC2012_val_00000002,n01000001 1 2 3 4\n"
    )  # image 3 has no row: a counted skip, not a crash
    src = imagenet_sources(tmp_path, "val")  # the csv is found next to train/ and val/
    labels = {item.key: item.labels[0] for item in src.items}
    assert labels == {"val/ILSVRC2012_val_00000001.JPEG": 2, "val/ILSVRC2012_val_00000002.JPEG": 0}
    assert [s.path for s in src.skipped] == ["val/ILSVRC2012_val_00000003.JPEG"]
    assert "ground-truth" in src.skipped[0].reason


def test_flat_val_with_devkit_txt_uses_devkit_order(tmp_path):
    write_tree(tmp_path, WNIDS, per_class=1)
    _flat_val(tmp_path, ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"])
    # The devkit's ILSVRC2012_ID order is not the sorted order: ID 1 = n03..., ID 3 = n01...
    devkit = tmp_path / "devkit_classes.txt"
    devkit.write_text("n03000003\nn02000002\nn01000001\n")
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("1\n3\n")
    src = imagenet_sources(tmp_path, "val", val_ground_truth=gt, devkit_classes=devkit)
    labels = {item.key: item.labels[0] for item in src.items}
    assert labels == {"val/ILSVRC2012_val_00000001.JPEG": 2, "val/ILSVRC2012_val_00000002.JPEG": 0}
    with pytest.raises(ValueError, match="devkit_classes"):
        imagenet_sources(tmp_path, "val", val_ground_truth=gt)


def test_jft_top_k_filters_remaps_and_drops_unlabelled(tmp_path):
    for i in range(5):
        unique_image(i).save(tmp_path / f"{i}.png")
    write_manifest(tmp_path / "m.jsonl", [
        ("0.png", ["cat", "animal"]),
        ("1.png", ["dog", "animal"]),
        ("2.png", [7, "animal"]),  # ints and strings share one namespace
        ("3.png", ["dog"]),
        ("4.png", ["rare"]),  # only a dropped label -> skipped with a reason
    ])
    (tmp_path / "m.jsonl").open("a").write("{not json\n")
    src = jft_sources(tmp_path / "m.jsonl", top_labels=2)
    assert src.classes == ["animal", "dog"]  # most frequent first
    assert src.label_frequencies == {"animal": 3, "dog": 2, "7": 1, "cat": 1, "rare": 1}
    labels = {item.key: item.labels for item in src.items}
    assert labels == {"0.png": (0,), "1.png": (1, 0), "2.png": (0,), "3.png": (1,)}
    reasons = {s.path: s.reason for s in src.skipped}
    assert reasons["4.png"] == "no label among the top 2"
    assert reasons["m.jsonl:6"].startswith("bad manifest line")


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ValidationError, match="resolution 100 is not supported"):
        ShardConfig(source="imagenet", root=tmp_path, out=tmp_path / "o", resolution=100)
    with pytest.raises(ValidationError, match="is not a folder"):
        ShardConfig(source="imagenet", root=tmp_path / "missing", out=tmp_path / "o", resolution=32)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        jft_sources(empty)
