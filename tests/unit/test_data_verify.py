"""Shards are checked before they are trusted: sizes against dataset.json, sha256 when asked,
and tars that break mid-stream; `stop` names the tar in one line, `skip` leaves it out."""

from __future__ import annotations

import shutil

import pytest
import torch

from biggan.data.loader import eval_loader, train_loader
from biggan.data.verify import check_shards, usable_shards
from biggan.errors import DamagedShard


@pytest.fixture()
def shards(digits_shards, tmp_path):
    """A private copy of the digits train shards (7 tars of <= 200 samples)."""
    return shutil.copytree(digits_shards["train"], tmp_path / "train")


def _cut(path, fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_intact_shards_pass_and_sizes_are_recorded(shards):
    assert check_shards(str(shards), hashes=True) == []
    kept, skipped = usable_shards(str(shards), "stop")
    assert len(kept) == len(list(shards.glob("shard-*.tar"))) and skipped == []


def test_a_cut_tar_stops_with_one_line_naming_it(shards):
    _cut(shards / "shard-000001.tar")
    with pytest.raises(DamagedShard, match=r"shard .*shard-000001.tar is \d+ bytes, dataset.json says \d+") as err:
        usable_shards(str(shards), "stop")
    assert "\n" not in str(err.value)
    with pytest.raises(DamagedShard, match="shard-000001.tar"):
        next(iter(eval_loader(str(shards), 64)))  # evaluation never reads a damaged set silently


def test_skip_leaves_damaged_tars_out_and_counts_them(shards):
    _cut(shards / "shard-000001.tar")
    (shards / "shard-000003.tar").unlink()
    warnings: list[str] = []
    kept, skipped = usable_shards(str(shards), "skip", warn=warnings.append)
    assert sorted(p.uri.rsplit("/", 1)[-1] for p in kept if p.name in ("shard-000001.tar", "shard-000003.tar")) == []
    assert [s.uri.rsplit("/", 1)[-1] for s in skipped] == ["shard-000001.tar", "shard-000003.tar"]
    assert "is missing" in skipped[1].reason and len(warnings) == 2
    with train_loader(str(shards), 8, 0, 1, 0, 50, 0, policy="skip") as batches:
        images, labels = next(batches)
    assert images.shape == (8, 3, 32, 32)


def test_same_size_damage_is_caught_by_the_hash(shards):
    tar = shards / "shard-000002.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    assert check_shards(str(shards)) == []  # sizes alone cannot tell
    (problem,) = check_shards(str(shards), hashes=True)
    assert problem.uri.endswith("shard-000002.tar") and "sha256" in problem.reason


def test_a_tar_that_breaks_mid_stream_stops_training_naming_it(shards, monkeypatch):
    """A tar whose size matches but whose bytes end in garbage: the stream handler names it."""
    tar = shards / "shard-000000.tar"
    data = bytearray(tar.read_bytes())
    data[512 * 40:] = b"\xff" * (len(data) - 512 * 40)  # headers after the first few members are garbage
    tar.write_bytes(bytes(data))
    with pytest.raises(DamagedShard, match="shard-000000.tar does not read"):
        with train_loader(str(shards), 16, 0, 1, 0, 0, 0, policy="stop") as batches:
            for _ in range(200):
                next(batches)
    with train_loader(str(shards), 16, 0, 1, 0, 0, 0, policy="skip") as batches:
        assert all(torch.isfinite(next(batches)[0]).all() for _ in range(30))
