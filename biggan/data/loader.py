"""WebDataset pipelines over a shard set: an infinite, shuffled, rank-split training stream and a
deterministic evaluation pass that yields every sample exactly once."""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torchvision.io import ImageReadMode, decode_image
from webdataset.tariterators import group_by_keys, tar_file_iterator

from biggan.data.info import load_dataset_info
from biggan.data.verify import Policy, stream_handler, usable_shards
from biggan.errors import DamagedShard
from biggan.storage import Location

log = logging.getLogger("biggan.data")


def _parse_sample(sample: dict, image_key: str) -> tuple[torch.Tensor, list[int], str]:
    """(image, labels, source key) of a sample; a sample that does not parse (image bytes that
    do not decode, labels that are not integers, a missing member) is a damaged shard, named."""
    try:
        labels = _labels(sample)
        if not labels:
            raise ValueError("no label")
        data = sample[image_key]
        if image_key == "png" and not png_intact(data):
            raise ValueError("its PNG bytes do not match their checksums")
        return _decode_rgb(data), labels, sample["src"].decode()
    except (RuntimeError, KeyError, ValueError, AttributeError) as err:
        raise DamagedShard(f"shard {sample.get('__url__', '?')} does not read: sample {sample.get('__key__', '?')} "
                           f"is damaged ({type(err).__name__}: {err})") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_intact(data: bytes) -> bool:
    """Every chunk of a PNG present and matching its CRC32, up to IEND.

    torchvision's PNG decoder tells libpng to ignore CRC errors, and a garbled PNG then crashed
    the process (a segmentation fault, seen with one flipped byte). Checking the CRCs first
    (zlib's crc32, C speed) turns that into a damaged-shard error naming the tar."""
    if not data.startswith(_PNG_SIGNATURE):
        return False
    view, pos = memoryview(data), len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(view[pos + 4:pos + 8 + length]) != int.from_bytes(view[end - 4:end], "big"):
            return False
        if view[pos + 4:pos + 8] == b"IEND":
            return True
        pos = end
    return False


def _decode_rgb(data: bytes) -> torch.Tensor:
    """Stored samples are already 8-bit RGB at the final size: decode only, to 3xHxW uint8.

    torchvision's libpng/libjpeg decoder writes the CHW tensor directly; it measured about 2x
    faster than PIL + numpy on 128 px PNGs here (benchmarks/data.py), and decoding is the
    loader's main per-sample cost. bytearray: torch wants a writable buffer.
    """
    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _labels(sample: dict) -> list[int]:
    return [int(tok) for tok in sample["cls"].split()]


def _to_tensor(images: list[torch.Tensor], as_uint8: bool) -> torch.Tensor:
    batch = torch.stack(images)  # B,3,H,W uint8
    if as_uint8:
        return batch
    return batch.float().div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1], G's output range


def open_shards(shards: Iterable[Location], handler: Callable[[Exception], bool] = wds.reraise_exception,
                expected: dict[str, int] | None = None) -> Iterator[dict]:
    """Samples (dicts of member bytes by extension, `__url__` = the tar) of tars read through the
    storage layer, so a shard set on an object store streams exactly like a local one.

    Each tar is counted against `expected` (name -> dataset.json's num_samples): Python's
    tarfile stops silently at a garbled header after the first member, so a tar that ends
    early is reported to `handler` as damaged instead of quietly losing its other samples.
    """
    for shard in shards:
        try:
            count = 0
            with shard.open_input() as stream:
                files = tar_file_iterator(stream, handler=handler)
                for sample in group_by_keys((dict(f, __url__=shard.uri) for f in files), handler=handler):
                    count += 1
                    yield sample
            want = (expected or {}).get(shard.name)
            if want is not None and count != want:
                raise DamagedShard(f"shard {shard.uri} does not read: it ends after {count} of its {want} samples")
        except Exception as exn:
            if isinstance(exn, DamagedShard) and handler is wds.reraise_exception:
                raise
            exn.args = exn.args + (shard.uri,)
            if not handler(exn):
                return


def shards_for(shards: list[Location], rank: int, world_size: int) -> list[Location]:
    """Rank `rank`'s shards: disjoint round-robin when there are at least as many shards as ranks;
    otherwise every rank reads all shards (with its own seed), because an empty rank would hang DDP."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    if len(shards) >= world_size:
        return shards[rank::world_size]
    log.warning("%d shards for %d ranks: every rank reads all shards; write smaller shards "
                "(--samples-per-shard) for disjoint per-rank data", len(shards), world_size)
    return list(shards)


class TrainStream(IterableDataset):
    """Infinite batches for one rank; DataLoader workers split the rank's shards again."""

    def __init__(self, shards: list[Location], batch_size: int, rank: int, world_size: int,
                 seed: int, shuffle_buffer: int, policy: Policy = "stop", expected: dict[str, int] | None = None):
        super().__init__()
        self.policy = policy  # a tar that fails mid-stream: stop with its name, or skip it
        self.expected = expected  # tar name -> samples dataset.json lists for it
        self.shards = shards_for(list(shards), rank, world_size)
        self.batch_size = batch_size  # per-rank batch
        self.rank = rank
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer  # samples held for the in-memory shuffle

    def _worker_shards(self, worker: int, num_workers: int) -> list[Location]:
        if len(self.shards) >= num_workers:
            return self.shards[worker::num_workers]
        return self.shards  # fewer shards than workers: all read all, with different seeds

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        shards = self._worker_shards(worker, num_workers)
        # One RNG per (seed, rank, worker) that keeps running across epochs: shard order, the
        # shuffle buffer and the multi-label draw all differ between epochs, workers and ranks.
        rng = random.Random(f"biggan-train-{self.seed}-{self.rank}-{worker}")

        def shard_order() -> Iterator[Location]:
            # Resample forever, a fresh permutation per epoch, so no rank or worker runs dry.
            while True:
                order = list(shards)
                rng.shuffle(order)
                yield from order

        def decode(sample: dict) -> tuple[torch.Tensor, int]:
            image, labels, _src = _parse_sample(sample, "png" if "png" in sample else "jpg")
            # Section 5.2: a multi-label image gets one of its labels uniformly at random, drawn
            # again every time the image is drawn.
            return image, rng.choice(labels)

        def collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = zip(*samples)
            return _to_tensor(list(images), as_uint8=False), torch.tensor(labels, dtype=torch.int64)

        pipeline = wds.DataPipeline(
            lambda: open_shards(shard_order(), handler=stream_handler(self.policy), expected=self.expected),
            wds.shuffle(self.shuffle_buffer, initial=min(self.shuffle_buffer, 100), rng=rng),
            wds.map(decode, handler=stream_handler(self.policy)),
            wds.batched(self.batch_size, collation_fn=collate, partial=False),
        )
        return iter(pipeline)


class TrainBatches:
    """The training stream as an iterator that can be closed.

    With DataLoader workers, an abandoned iterator only stops its worker processes when the
    garbage collector gets to it; the loop restarts the stream at every checkpoint, so it
    closes the old one explicitly (and a `with` block closes it too).
    """

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]):
        self._batches = batches

    def __iter__(self) -> TrainBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self._batches)

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
    """Infinite (images float32 Bx3xHxW in [-1, 1], labels int64 B) for one rank of `world_size`."""
    # Sizes against dataset.json (one listing): a damaged tar stops here or is left out.
    paths, _skipped = usable_shards(str(shard_dir), policy, warn=lambda line: None if rank else log.warning(line))
    expected = {shard.name: shard.num_samples for shard in load_dataset_info(shard_dir).shards}
    stream = TrainStream(paths, batch_size=batch_size, rank=rank, world_size=world_size,
                         seed=seed, shuffle_buffer=shuffle_buffer, policy=policy, expected=expected)
    if num_workers == 0:
        return TrainBatches(iter(stream))
    # Batches are assembled inside the workers (batch_size=None): one IPC message per batch.
    # Workers come from a forkserver, not fork: the trainer process runs threads (Ray's, and
    # Prefect's when a flow calls this), and a forked copy of them failed at worker exit (exit
    # code 1 on every clean shutdown under a Prefect flow).
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers, persistent_workers=True,
                        prefetch_factor=4, multiprocessing_context="forkserver")
    return TrainBatches(iter(loader))


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
        image, sample_labels, src = _parse_sample(sample, image_key)
        images.append(image)
        labels.append(sample_labels[0])
        keys.append(src)
        if len(images) == batch_size:
            yield _to_tensor(images, as_uint8), torch.tensor(labels, dtype=torch.int64), keys
            images, labels, keys = [], [], []
    if images:
        yield _to_tensor(images, as_uint8), torch.tensor(labels, dtype=torch.int64), keys
