"""Training stream: rank-disjoint shards, infinite resampling, multi-label draws; eval determinism."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest
import torch

from biggan.config import ShardConfig
from biggan.data.loader import eval_loader, shards_for, train_loader
from biggan.data.shard import shard_dataset
from tests.unit._data_helpers import unique_image, write_manifest, write_tree


def _ids(images: torch.Tensor) -> list[int]:
    u8 = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
    return [int(x[0, 0, 0]) + 256 * int(x[1, 0, 0]) for x in u8]


@pytest.fixture(scope="module")
def tree_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    write_tree(root / "src", ["a", "b", "c", "d"], per_class=12)
    out = root / "out"
    shard_dataset(ShardConfig(source="imagenet", root=root / "src", out=out, resolution=32, samples_per_shard=6))
    return out


def test_shards_for_is_disjoint_and_covers_all():
    shards = [f"s{i}" for i in range(7)]
    parts = [shards_for(shards, r, 3) for r in range(3)]
    assert sorted(itertools.chain(*parts)) == sorted(shards)
    assert all(set(a).isdisjoint(b) for a, b in itertools.combinations(parts, 2))
    assert shards_for(shards[:1], 1, 2) == shards[:1]  # fewer shards than ranks: nobody starves
    with pytest.raises(ValueError):
        shards_for(shards, 3, 3)


def test_ranks_get_disjoint_samples_and_never_run_dry(tree_shards):
    seen = []
    for rank in range(2):
        stream = train_loader(tree_shards, batch_size=5, rank=rank, world_size=2, seed=0,
                              shuffle_buffer=10, num_workers=0)
        # 48 images / 2 ranks = 24 each; draw 3 epochs' worth: the stream keeps going.
        ids = [i for images, _ in itertools.islice(stream, 15) for i in _ids(images)]
        assert len(set(ids)) == 24
        seen.append(set(ids))
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 48


def test_train_batches_are_float_in_range_with_right_labels(tree_shards):
    images, labels = next(train_loader(tree_shards, 8, 0, 1, 0, 20, 0))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and images.min() >= -1 and images.max() <= 1
    for i, label in zip(_ids(images), labels.tolist()):
        assert label == i // 12  # write_tree numbers images class by class, 12 per class


def test_eval_loader_is_deterministic_and_complete(tree_shards):
    first = [k for _, _, keys in eval_loader(tree_shards, 7) for k in keys]
    second = [k for _, _, keys in eval_loader(tree_shards, 7) for k in keys]
    assert first == second and len(first) == len(set(first)) == 48


@pytest.fixture(scope="module")
def two_label_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    entries = []
    for i in range(4):
        unique_image(i).save(root / f"{i}.png")
        entries.append((f"{i}.png", [f"x{i}", f"y{i}"]))
    write_manifest(root / "m.jsonl", entries)
    out = root / "out"
    shard_dataset(ShardConfig(source="jft", manifest=root / "m.jsonl", out=out, resolution=32, samples_per_shard=4))
    return out


def _draws(stream, batches):
    per_image = defaultdict(list)
    for images, labels in itertools.islice(stream, batches):
        for i, label in zip(_ids(images), labels.tolist()):
            per_image[i].append(label)
    return per_image


def test_multi_label_draws_each_label_half_the_time_and_differ_across_epochs(two_label_shards):
    stream = train_loader(two_label_shards, 4, 0, 1, 0, 4, 0)
    per_image = _draws(stream, 400)  # 400 epochs of the 4 images
    for image, labels in per_image.items():
        counts = Counter(labels)
        assert len(counts) == 2  # both labels of this image, never another image's
        share = max(counts.values()) / len(labels)
        sigma = (0.25 / len(labels)) ** 0.5  # binomial(n, 1/2)
        assert share - 0.5 < 4 * sigma, f"image {image}: {counts}"
        # Epoch to epoch the draw changes (a fixed per-epoch label would give a constant run).
        assert len(set(labels[:20])) == 2


def test_multi_label_draws_differ_across_workers_and_ranks(two_label_shards):
    # One shard and two DataLoader workers: both read it, each with its own RNG stream.
    with train_loader(two_label_shards, 4, 0, 1, 0, 4, 2) as stream:
        batches = list(itertools.islice(stream, 40))
    by_worker = [batches[0::2], batches[1::2]]  # DataLoader alternates workers in order
    seqs = [[tuple(labels.tolist()) for _, labels in b] for b in by_worker]
    assert seqs[0] != seqs[1]
    other_rank = list(itertools.islice(train_loader(two_label_shards, 4, 1, 2, 0, 4, 0), 20))
    mine = list(itertools.islice(train_loader(two_label_shards, 4, 0, 2, 0, 4, 0), 20))
    assert [y.tolist() for _, y in mine] != [y.tolist() for _, y in other_rank]


def test_eval_reports_first_label_and_jpg_format_round_trips(tmp_path):
    entries = []
    for i in range(6):
        unique_image(i, size=(50, 40)).save(tmp_path / f"{i}.png")
        entries.append((f"{i}.png", [f"b{i % 2}", "a"]))  # "a" is the most frequent -> index 0
    write_manifest(tmp_path / "m.jsonl", entries)
    out = tmp_path / "out"
    info = shard_dataset(ShardConfig(source="jft", manifest=tmp_path / "m.jsonl", out=out, resolution=32,
                                     samples_per_shard=4, format="jpg", jpeg_quality=90))
    assert info.format == "jpg" and info.classes == ["a", "b0", "b1"]
    for images, labels, keys in eval_loader(out, 10, as_uint8=True):
        for key, label, img in zip(keys, labels.tolist(), images):
            i = int(key.split(".")[0])
            assert label == 1 + i % 2  # the first listed label of the manifest line, remapped
            assert abs(int(img[0, 5, 5]) - i) <= 3  # JPEG is lossy but close on a flat colour


def test_closing_the_train_stream_stops_its_loader_workers(two_label_shards):
    import multiprocessing

    before = set(multiprocessing.active_children())
    stream = train_loader(two_label_shards, 4, 0, 1, 0, 4, 2)
    next(stream)
    assert len(set(multiprocessing.active_children()) - before) == 2
    stream.close()
    assert set(multiprocessing.active_children()) - before == set()
    with pytest.raises(StopIteration):
        next(stream)
