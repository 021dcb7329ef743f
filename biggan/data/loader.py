"""WebDataset pipelines over a shard set: an infinite, shuffled, rank-split training stream and a
deterministic evaluation pass that yields every sample exactly once. Reading a tar's samples and
parsing one sample is biggan.data.samples."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from biggan.data.info import load_dataset_info
from biggan.data.samples import batch_tensor, open_shards, parse_sample, png_intact, sample_labels
from biggan.data.verify import Policy, stream_handler, usable_shards
from biggan.errors import DamagedShard
from biggan.storage import Location

log = logging.getLogger("biggan.data")


def shards_for(shards: list[Location], rank: int, world_size: int) -> list[Location]:
    """Stream (or rank) `rank`'s shards: disjoint round-robin when there are at least as many shards as
    streams; otherwise every stream reads all shards (with its own seed), because an empty one would hang DDP."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    if len(shards) >= world_size:
        return shards[rank::world_size]
    if rank == 0:
        log.warning("%d shards for %d data streams: every stream reads all shards; write smaller shards "
                    "(--samples-per-shard) for disjoint per-stream data", len(shards), world_size)
    return list(shards)


@dataclass(frozen=True)
class Reader:
    """One reader of one data stream: its shards in a seeded order, a shuffle buffer, per-sample label draws.

    A stream with R readers yields its batches from them in turn (batch t from reader t % R), so its batch
    sequence depends on (seed, stream, R) alone, not on which process or training worker reads it."""

    stream: int  # the run's data stream it belongs to
    reader: int  # which of the stream's readers
    seed: int  # the stream's segment seed
    shards: tuple[Location, ...]  # the shards it reads (the stream's, split among its readers)
    skip: int = 0  # samples of its order passed over, without decoding, before its first batch


def stream_readers(shards: list[Location], stream: int, streams: int, readers: int, seed: int,
                   skip_batches: int = 0, batch_size: int = 1) -> list[Reader]:
    """The `readers` readers of stream `stream` of `streams`, positioned after the stream's first
    `skip_batches` batches of `batch_size` (a resume from a checkpoint taken mid-segment)."""
    mine = shards_for(list(shards), stream, streams)
    parts = [mine[r::readers] if len(mine) >= readers else mine for r in range(readers)]
    # Batch t of the stream came from reader t % readers: count each reader's share of the skipped ones.
    return [Reader(stream, r, seed, tuple(parts[r]),
                   (skip_batches // readers + (1 if r < skip_batches % readers else 0)) * batch_size)
            for r in range(readers)]


class TrainStream(IterableDataset):
    """Infinite batches of a set of readers, in slot order: slot q is `slots[q % len(slots)]`.

    In one process the readers are read in turn; with DataLoader workers, worker p reads slots p, p + P,
    ... in turn, and the DataLoader's in-order round-robin over its P workers gives slot order again."""

    def __init__(self, slots: list[Reader], batch_size: int, shuffle_buffer: int, policy: Policy = "stop",
                 expected: dict[str, int] | None = None):
        super().__init__()
        self.slots = slots  # readers in the order their batches are consumed
        self.batch_size = batch_size  # per-reader batch
        self.shuffle_buffer = shuffle_buffer  # samples each reader holds for the in-memory shuffle
        self.policy = policy  # a tar that fails mid-stream: stop with its name, or skip it
        self.expected = expected  # tar name -> samples dataset.json lists for it

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        mine = self.slots if info is None else self.slots[info.id::info.num_workers]
        batches = [iter(self._pipeline(reader)) for reader in mine]
        while True:
            for stream in batches:
                yield next(stream)

    def _pipeline(self, reader: Reader):
        # One RNG per (seed, stream, reader) that keeps running across epochs: shard order, the
        # shuffle buffer and the multi-label draw all differ between epochs, readers and streams.
        rng = random.Random(f"biggan-train-{reader.seed}-{reader.stream}-{reader.reader}")
        handler = stream_handler(self.policy)

        def shard_order() -> Iterator[Location]:
            # Resample forever, a fresh permutation per epoch, so no stream or reader runs dry.
            while True:
                order = list(reader.shards)
                rng.shuffle(order)
                yield from order

        def decode(sample: dict) -> tuple[torch.Tensor, int]:
            image, labels, _src = parse_sample(sample, "png" if "png" in sample else "jpg")
            # Section 5.2: a multi-label image gets one of its labels uniformly at random, drawn
            # again every time the image is drawn.
            return image, rng.choice(labels)

        def collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = zip(*samples)
            return batch_tensor(list(images), as_uint8=False), torch.tensor(labels, dtype=torch.int64)

        return wds.DataPipeline(
            lambda: open_shards(shard_order(), handler=handler, expected=self.expected),
            wds.shuffle(self.shuffle_buffer, initial=min(self.shuffle_buffer, 100), rng=rng),
            lambda samples: _pass_over(samples, reader.skip, rng, handler),
            wds.map(decode, handler=handler),
            wds.batched(self.batch_size, collation_fn=collate, partial=False),
        )


def _pass_over(samples: Iterator[dict], count: int, rng: random.Random,
               handler: Callable[[Exception], bool]) -> Iterator[dict]:
    """Pass over the first `count` samples as decoding them would, without decoding: the same label
    draw from `rng` for each, the same samples left out as damaged (labels, members, PNG checksums; a
    JPEG whose bytes do not decode is the one case only decoding finds)."""
    for sample in samples:
        if count <= 0:
            yield sample
            continue
        try:
            labels = sample_labels(sample)
            key = "png" if "png" in sample else "jpg"
            if not labels or "src" not in sample or key not in sample or (key == "png" and not png_intact(sample[key])):
                raise DamagedShard(f"shard {sample.get('__url__', '?')} does not read: sample "
                                   f"{sample.get('__key__', '?')} is damaged")
        except (DamagedShard, KeyError, ValueError, AttributeError) as err:
            if handler(err):
                continue
            return
        rng.choice(labels)
        count -= 1


class TrainBatches:
    """The training stream as an iterator that can be closed: each item joins `group` consecutive batches
    of the stream (one per data stream a worker reads) into the worker's micro-batch.

    With DataLoader workers, an abandoned iterator only stops its worker processes when the
    garbage collector gets to it; the loop restarts the stream at every checkpoint, so it
    closes the old one explicitly (and a `with` block closes it too).
    """

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], group: int = 1):
        self._batches = batches
        self.group = group  # batches joined per item

    def __iter__(self) -> TrainBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.group == 1:
            return next(self._batches)
        parts = [next(self._batches) for _ in range(self.group)]
        return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])

    def close(self) -> None:
        shutdown = getattr(self._batches, "_shutdown_workers", None)  # DataLoader's worker iterator
        if shutdown is not None:
            shutdown()
        self._batches = iter(())

    def __enter__(self) -> TrainBatches:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def train_loader(shard_dir: str | Path | Location, batch_size: int, rank: int, world_size: int, seed: int,
                 shuffle_buffer: int, num_workers: int, policy: Policy = "stop") -> TrainBatches:
    """Infinite (images float32 Bx3xHxW in [-1, 1], labels int64 B): stream `rank` of `world_size`."""
    return stream_loader(shard_dir, batch_size, [rank], world_size, [seed], shuffle_buffer, num_workers, policy)


def stream_loader(shard_dir: str | Path | Location, batch_size: int, streams: list[int], num_streams: int,
                  seeds: list[int], shuffle_buffer: int, num_workers: int, policy: Policy = "stop",
                  skip_batches: int = 0) -> TrainBatches:
    """Infinite batches of `len(streams) x batch_size` (images float32 in [-1, 1], labels int64): the next
    `batch_size` samples of each of `streams` (of `num_streams`, seeded with `seeds`), joined in stream order,
    after each stream's first `skip_batches` batches (passed over without decoding).

    `num_workers` DataLoader processes read the streams, each stream through that many readers (0: one
    reader per stream, in this process); a stream's order depends on its seed and the reader count only."""
    # Sizes against dataset.json (one listing): a damaged tar stops here or is left out.
    first = min(streams)
    paths, _skipped = usable_shards(str(shard_dir), policy, warn=lambda line: None if first else log.warning(line))
    expected = {shard.name: shard.num_samples for shard in load_dataset_info(shard_dir).shards}
    readers = max(1, num_workers)
    per_stream = [stream_readers(paths, stream, num_streams, readers, seed, skip_batches, batch_size)
                  for stream, seed in zip(streams, seeds)]
    # Micro-step j reads batch skip_batches + j of every stream, which came from reader (skip_batches + j) % R.
    slots = [per_stream[i][(skip_batches + j) % readers] for j in range(readers) for i in range(len(streams))]
    stream = TrainStream(slots, batch_size=batch_size, shuffle_buffer=shuffle_buffer, policy=policy,
                         expected=expected)
    if num_workers == 0:
        return TrainBatches(iter(stream), group=len(streams))
    # Batches are assembled inside the workers (batch_size=None): one IPC message per batch.
    # Workers come from a forkserver, not fork: the trainer process runs threads (Ray's, and
    # Prefect's when a flow calls this), and a forked copy of them failed at worker exit (exit
    # code 1 on every clean shutdown under a Prefect flow).
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers, persistent_workers=True,
                        prefetch_factor=4, multiprocessing_context="forkserver")
    return TrainBatches(iter(loader), group=len(streams))


def eval_loader(shard_dir: str | Path | Location, batch_size: int, as_uint8: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """Every sample exactly once, in shard then tar order: (images, labels, source keys).

    Multi-label samples report their first listed label. uint8 images are torch-fidelity's format.
    """
    info = load_dataset_info(shard_dir)
    # Strict: an evaluation pass must not silently lose samples (a damaged tar is one clear error).
    paths, _ = usable_shards(str(shard_dir), "stop")
    pipeline = open_shards(paths, handler=stream_handler("stop"),
                           expected={shard.name: shard.num_samples for shard in info.shards})
    images: list[torch.Tensor] = []
    labels: list[int] = []
    keys: list[str] = []
    image_key = info.format
    for sample in pipeline:
        image, sample_labels, src = parse_sample(sample, image_key)
        images.append(image)
        labels.append(sample_labels[0])
        keys.append(src)
        if len(images) == batch_size:
            yield batch_tensor(images, as_uint8), torch.tensor(labels, dtype=torch.int64), keys
            images, labels, keys = [], [], []
    if images:
        yield batch_tensor(images, as_uint8), torch.tensor(labels, dtype=torch.int64), keys
