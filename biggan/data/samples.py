"""A shard's samples: tars read through the storage layer (counted against dataset.json), one
sample parsed and checked (image bytes, labels, PNG checksums; a damaged one names its tar), and
decoded images stacked into a batch. Used by the training stream and the evaluation pass
(biggan.data.loader)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

import torch
import webdataset as wds
from torchvision.io import ImageReadMode, decode_image
from webdataset.tariterators import group_by_keys, tar_file_iterator

from biggan.errors import DamagedShard
from biggan.storage import Location


def parse_sample(sample: dict, image_key: str) -> tuple[torch.Tensor, list[int], str]:
    """(image, labels, source key) of a sample; a sample that does not parse (image bytes that
    do not decode, labels that are not integers, a missing member) is a damaged shard, named."""
    try:
        labels = sample_labels(sample)
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


def sample_labels(sample: dict) -> list[int]:
    return [int(tok) for tok in sample["cls"].split()]


def batch_tensor(images: list[torch.Tensor], as_uint8: bool) -> torch.Tensor:
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
