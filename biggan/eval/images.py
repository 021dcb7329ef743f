"""uint8 image Datasets in torch-fidelity's format (3xHxW, dtype uint8): real shards and G samples.

NOTES.md: torch-fidelity 0.4.0's GenerativeModelModuleWrapper crashes on conditional models
(np.int), so generated images are materialised into a Dataset instead.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """A uint8 Nx3xHxW tensor as a Dataset of 3xHxW images."""

    def __init__(self, images: Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 Nx3xHxW images, got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def load_shard_images(
    shard_dir: str,  # shard set (tars + dataset.json)
    classes: Sequence[int] | None = None,  # keep only these labels; None = all
    limit: int | None = None,  # stop after this many kept images
    batch_size: int = 256,
) -> tuple[Tensor, Tensor, list[str]]:
    """(uint8 images Nx3xHxW, int64 labels N, keys) of a shard set, in eval_loader's fixed order."""
    from biggan.data.loader import eval_loader

    keep = None if classes is None else torch.tensor(sorted(set(classes)), dtype=torch.int64)
    chunks, label_chunks, keys = [], [], []
    count = 0
    for images, labels, batch_keys in eval_loader(shard_dir, batch_size, as_uint8=True):
        if keep is not None:
            mask = torch.isin(labels, keep)
            images, labels = images[mask], labels[mask]
            batch_keys = [k for k, m in zip(batch_keys, mask.tolist()) if m]
        chunks.append(images)
        label_chunks.append(labels)
        keys.extend(batch_keys)
        count += int(labels.numel())
        if limit is not None and count >= limit:
            break
    if not chunks or count == 0:
        raise ValueError(f"no images in {shard_dir}" + (f" for classes {list(classes)}" if classes else ""))
    images, labels = torch.cat(chunks), torch.cat(label_chunks)
    if limit is not None:
        images, labels, keys = images[:limit], labels[:limit], keys[:limit]
    return images, labels, keys


class LazyShardImages(Dataset):
    """Real images of a shard set, read on first access only.

    torch-fidelity asks a cached input for nothing but its cache name, so when the reference
    statistics are cached the shards are never read. A whole shard set (no class subset, no
    limit) is streamed: torch-fidelity reads indices in order (num_workers=0 with
    save_cpu_ram, no shuffle), so only one eval_loader batch is held at a time and ImageNet-size
    references never sit in memory. Out-of-order access restarts the stream from the start.
    """

    def __init__(self, shard_dir: str, classes: Sequence[int] | None = None, limit: int | None = None,
                 batch_size: int = 256):
        self.shard_dir = shard_dir
        self.classes = classes
        self.limit = limit
        self.batch_size = batch_size
        self._images: Tensor | None = None  # subsets: all selected images
        self._stream = None  # whole set: iterator over eval_loader batches
        self._buffer: Tensor | None = None
        self._buffer_start = 0

    @property
    def _streaming(self) -> bool:
        return self.classes is None and self.limit is None

    def _load(self) -> Tensor:
        if self._images is None:
            self._images, _labels, _keys = load_shard_images(self.shard_dir, self.classes, self.limit)
        return self._images

    def __len__(self) -> int:
        if self._streaming:
            from biggan.data.info import load_dataset_info

            return load_dataset_info(self.shard_dir).num_samples
        return int(self._load().shape[0])

    def _restart(self) -> None:
        from biggan.data.loader import eval_loader

        self._stream = iter(eval_loader(self.shard_dir, self.batch_size, as_uint8=True))
        self._buffer, self._buffer_start = None, 0

    def __getitem__(self, index: int) -> Tensor:
        if not self._streaming:
            return self._load()[index]
        if index < 0:
            index += len(self)
        if self._stream is None or index < self._buffer_start:
            self._restart()
        while self._buffer is None or index >= self._buffer_start + self._buffer.shape[0]:
            if self._buffer is not None:
                self._buffer_start += self._buffer.shape[0]
            try:
                self._buffer = next(self._stream)[0]
            except StopIteration:
                raise IndexError(f"index {index} beyond the {self._buffer_start} images of {self.shard_dir}") from None
        return self._buffer[index - self._buffer_start]


def generate_images(
    G: torch.nn.Module,  # generator in eval mode (EMA weights, standing stats already applied)
    num_samples: int,
    num_classes: int,
    truncation: float | None,  # resampling threshold (Section 3.1); None = plain prior
    prior: str,  # ModelConfig.latent
    batch_size: int,
    seed: int,
    device: torch.device | str = "cpu",
    labels: Tensor | None = None,  # fixed labels (e.g. class-wise NN queries); default balanced
) -> tuple[Tensor, Tensor]:
    """(uint8 images Nx3xRxR on the CPU, labels N) sampled from G with a seeded generator."""
    from biggan.sampling.images import generated_batches

    images, all_labels = [], []
    for batch, y in generated_batches(G, num_samples, num_classes, truncation, prior, batch_size, seed,
                                      device, labels):
        images.append(batch.cpu())
        all_labels.append(y)
    return torch.cat(images), torch.cat(all_labels)
