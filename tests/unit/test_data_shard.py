"""Shard writer: round trip, counted skips, idempotent rerun, kill-and-rerun gives the same set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from biggan.config import ShardConfig
from biggan.data.info import load_dataset_info
from biggan.data.loader import eval_loader
from biggan.data.shard import RECORDS_DIR, plan_shards, shard_dataset, write_shard
from tests.unit._data_helpers import image_id, write_tree

WNIDS = ["n01", "n02", "n03"]


def _cfg(root: Path, out: Path, **extra) -> ShardConfig:
    return ShardConfig(source="imagenet", root=root, split="train", out=out, resolution=32,
                       samples_per_shard=extra.pop("samples_per_shard", 7), **extra)


def test_round_trip_every_image_once_with_its_label(tmp_path):
    truth = write_tree(tmp_path / "src", WNIDS, per_class=10)
    info = shard_dataset(_cfg(tmp_path / "src", tmp_path / "out"))
    assert info.num_samples == info.num_found == 30 and len(info.shards) == 5
    assert info.classes == WNIDS and info.num_classes == 3
    seen = {}
    for images, labels, keys in eval_loader(tmp_path / "out", batch_size=8, as_uint8=True):
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
        for img, label, key in zip(images.numpy(), labels.tolist(), keys):
            assert key not in seen
            seen[key] = (image_id(img), label)
    assert {k: v[0] for k, v in seen.items()} == truth
    assert all(label == WNIDS.index(k.split("/")[1]) for k, (_, label) in seen.items())
    # The shuffle mixes classes: the first shard is not a single class.
    first = next(eval_loader(tmp_path / "out", batch_size=7))[1]
    assert len(set(first.tolist())) > 1


def test_bad_files_are_skipped_with_reasons_and_counts_add_up(tmp_path):
    src = tmp_path / "src"
    write_tree(src, WNIDS, per_class=4)
    bad = src / "train" / "n02"
    (bad / "zero.JPEG").write_bytes(b"")
    (bad / "fake.png").write_text("<html>not an image</html>")
    good = bad / "img_00004.png"
    (bad / "truncated.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    Image.new("RGB", (10, 10)).save(bad / "tiny.png")
    (bad / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    info = shard_dataset(_cfg(src, tmp_path / "out", min_size=20))
    reasons = {Path(s.path).name: s.reason for s in info.skipped}
    assert set(reasons) == {"zero.JPEG", "fake.png", "truncated.png", "tiny.png", "gone.jpg"}
    assert reasons["zero.JPEG"] == "zero-byte file"
    assert reasons["fake.png"].startswith("not an image")
    assert reasons["truncated.png"].startswith("corrupt or truncated")
    assert reasons["tiny.png"].startswith("short edge 10 px")
    assert reasons["gone.jpg"] == "missing file"
    assert info.num_samples == 12 and info.num_found == 17
    assert info.num_samples + len(info.skipped) == info.num_found
    assert sum(s.num_samples for s in info.shards) == info.num_samples


def _snapshot(out: Path) -> tuple[dict, set]:
    info = json.loads((out / "dataset.json").read_text())
    keys = [k for _, _, ks in eval_loader(out, batch_size=64) for k in ks]
    assert len(keys) == len(set(keys)), "duplicate samples"
    return info, set(keys)


def test_rerun_keeps_complete_shards_and_rewrites_damaged_ones(tmp_path):
    write_tree(tmp_path / "src", WNIDS, per_class=10)
    cfg = _cfg(tmp_path / "src", tmp_path / "out")
    reference = shard_dataset(cfg)
    out = tmp_path / "out"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    # Damage: truncate one tar, delete another, leave a killed writer's temp file around.
    (out / "shard-000001.tar").write_bytes((out / "shard-000001.tar").read_bytes()[:1000])
    (out / "shard-000003.tar").unlink()
    (out / ".shard-000002.tar.tmp-99999").write_bytes(b"partial")
    plan = plan_shards(cfg)
    records = {i: write_shard(plan, i) for i in range(len(plan.shards))}
    assert [i for i, r in records.items() if not r.reused] == [1, 3]
    again = shard_dataset(cfg)
    assert again == reference
    assert not list(out.glob(".shard-*"))
    for name in ("shard-000000.tar", "shard-000002.tar", "shard-000004.tar"):
        assert (out / name).stat().st_mtime_ns == mtimes[name]  # kept, not rewritten


def test_a_source_edited_in_place_invalidates_only_its_shard(tmp_path):
    write_tree(tmp_path / "src", WNIDS, per_class=10)
    cfg = _cfg(tmp_path / "src", tmp_path / "out")
    shard_dataset(cfg)
    plan = plan_shards(cfg)
    item = plan.shards[2][0]
    # Same name, new pixels (and a new mtime, as any editor or re-download gives it).
    Image.new("RGB", (40, 40), (255, 0, 255)).save(item.path)
    stat = os.stat(item.path)
    os.utime(item.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    records = {i: write_shard(plan_shards(cfg), i) for i in range(len(plan.shards))}
    assert [i for i, r in records.items() if not r.reused] == [2]
    shard_dataset(cfg)
    for images, _labels, keys in eval_loader(tmp_path / "out", 64, as_uint8=True):
        for key, image in zip(keys, images):
            if key == item.key:
                assert image[:, 16, 16].tolist() == [255, 0, 255]  # the new pixels were sharded
                break
        else:
            continue
        break
    else:
        raise AssertionError(f"{item.key} not found in the shards")


_KILLABLE = """
import sys
from pathlib import Path
from biggan.config import ShardConfig
from biggan.data.shard import shard_dataset
cfg = ShardConfig(source="imagenet", root=Path(sys.argv[1]), split="train", out=Path(sys.argv[2]),
                  resolution=32, samples_per_shard=3)
shard_dataset(cfg, workers=1)
"""


def test_kill_mid_way_and_rerun_gives_the_identical_set(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(WNIDS):
        (src / "train" / wnid).mkdir(parents=True)
        for i in range(60):
            # Noisy JPEGs large enough that the writer can be killed in the middle of the run.
            noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            Image.fromarray(noise).save(src / "train" / wnid / f"{c}_{i}.JPEG", quality=90)
    ref_cfg = _cfg(src, tmp_path / "ref", samples_per_shard=3)
    shard_dataset(ref_cfg)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(src), str(out)],
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / RECORDS_DIR).glob("*.json"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list((out / RECORDS_DIR).glob("*.json")))
    assert 3 <= written < 60, "the writer was not killed mid-way"
    assert not (out / "dataset.json").exists()
    shard_dataset(_cfg(src, out, samples_per_shard=3))
    ref_info, ref_keys = _snapshot(tmp_path / "ref")
    info, keys = _snapshot(out)
    assert keys == ref_keys and len(keys) == 180
    assert info["shards"] == ref_info["shards"]  # same names, counts and sha256: byte-identical tars
    assert info == ref_info


def test_dataset_json_is_written_last(tmp_path):
    write_tree(tmp_path / "src", WNIDS, per_class=3)
    cfg = _cfg(tmp_path / "src", tmp_path / "out")
    plan = plan_shards(cfg)
    write_shard(plan, 0)
    assert not (tmp_path / "out" / "dataset.json").exists()
    info = shard_dataset(cfg)
    assert load_dataset_info(tmp_path / "out") == info
    assert os.stat(tmp_path / "out" / "dataset.json").st_mode & 0o044
