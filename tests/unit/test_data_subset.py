"""`biggan shard imagenet --max-per-class N`: at most N images of each class, chosen
deterministically by the seed, the choice recorded in dataset.json; refused for JFT manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import ShardConfig
from biggan.data.info import load_dataset_info
from biggan.data.loader import eval_loader
from biggan.data.shard import plan_shards, shard_dataset
from tests.unit._data_helpers import image_id, write_tree

WNIDS = ["n001", "n002", "n003"]


def _tree(tmp_path: Path) -> dict[str, int]:
    index = write_tree(tmp_path / "src", WNIDS[:2], per_class=10)
    index.update(write_tree(tmp_path / "src", WNIDS[2:], per_class=2, start=100))  # a class below the cap
    return index


def _cfg(tmp_path: Path, out: str, **extra) -> ShardConfig:
    return ShardConfig(source="imagenet", root=tmp_path / "src", out=tmp_path / out, resolution=32,
                       samples_per_shard=4, **extra)


def _kept(shards: Path) -> list[int]:
    return sorted(image_id(images[i].numpy()) for images, _labels, _keys in eval_loader(str(shards), 8, as_uint8=True)
                  for i in range(images.shape[0]))


def test_at_most_n_per_class_chosen_by_the_seed_and_recorded(tmp_path):
    _tree(tmp_path)
    info = shard_dataset(_cfg(tmp_path, "cut", max_per_class=3))
    assert info.num_samples == 3 + 3 + 2 and info.num_found == 8 and not info.skipped
    assert info.subset is not None and info.subset.max_per_class == 3 and info.subset.listed == 22
    assert info.subset.per_class == [3, 3, 2] and "seed" in info.subset.rule
    assert load_dataset_info(tmp_path / "cut").subset == info.subset  # it is in dataset.json
    kept = _kept(tmp_path / "cut")
    by_class = Counter(0 if i < 10 else 1 if i < 20 else 2 for i in kept)
    assert by_class == {0: 3, 1: 3, 2: 2}

    again = shard_dataset(_cfg(tmp_path, "again", max_per_class=3))
    assert _kept(tmp_path / "again") == kept and [s.sha256 for s in again.shards] == [s.sha256 for s in info.shards]
    shard_dataset(_cfg(tmp_path, "other", max_per_class=3, seed=1))
    assert _kept(tmp_path / "other") != kept  # another seed, another choice (of 10 choose 3 per class)
    whole = shard_dataset(_cfg(tmp_path, "whole"))
    assert whole.subset is None and whole.num_samples == 22


def test_the_cut_keeps_stable_sample_ids_and_the_shuffled_order(tmp_path):
    _tree(tmp_path)
    full, cut = plan_shards(_cfg(tmp_path, "a")), plan_shards(_cfg(tmp_path, "b", max_per_class=3))
    order = [i for chunk in full.sample_ids for i in chunk]
    chosen = [i for chunk in cut.sample_ids for i in chunk]
    assert chosen == [i for i in order if i in set(chosen)]  # a subsequence of the full set's order


def test_max_per_class_is_refused_for_a_manifest_and_below_1_and_shown_by_dry_run(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"path": "a.png", "labels": ["x"]}\n')
    runner = CliRunner()
    with pytest.raises(ValueError, match="max_per_class needs one class per image"):
        ShardConfig(source="jft", manifest=tmp_path / "m.jsonl", out=tmp_path / "o", resolution=32, max_per_class=2)
    _tree(tmp_path)
    zero = runner.invoke(main, ["shard", "imagenet", "--root", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                                "--resolution", "32", "--max-per-class", "0"])
    assert zero.exit_code == 2 and "max_per_class" in zero.output
    dry = runner.invoke(main, ["shard", "imagenet", "--root", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                               "--resolution", "32", "--max-per-class", "4", "--dry-run"])
    assert dry.exit_code == 0 and json.loads(dry.output)["max_per_class"] == 4


@pytest.mark.slow
def test_a_subset_is_one_command(tmp_path):
    """The command a user types (through the shard-dataset flow on a temporary Prefect server)."""
    _tree(tmp_path)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "biggan", "shard", "imagenet", "--root", str(tmp_path / "src"),
                           "--out", str(tmp_path / "tenth"), "--resolution", "32", "--max-per-class", "1"],
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    info = load_dataset_info(tmp_path / "tenth")
    assert info.num_samples == 3 and info.subset.per_class == [1, 1, 1]
