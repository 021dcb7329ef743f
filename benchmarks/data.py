"""Data pipeline throughput on this machine: shard writing and the WebDataset training loader at
32 and 128 px, side by side with torchvision ImageFolder + DataLoader reading the same source
JPEGs and resizing to the same size.

    python benchmarks/data.py [--images 800] [--workers 2] [--batch 64]

Source images are synthetic ~500x400 JPEGs (smooth colour fields plus noise, so decoding costs
what a photo costs) written to a temp folder; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from biggan.config import ShardConfig
from biggan.data.loader import train_loader
from biggan.data.shard import shard_dataset


def write_sources(root: Path, count: int, classes: int = 10, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / "train" / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(400, 560)), int(rng.integers(340, 460))
        coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        noisy = np.asarray(coarse).astype(np.int16) + rng.integers(-20, 20, (h, w, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.JPEG", quality=90)


def bench_shard(root: Path, out: Path, resolution: int, workers: int) -> tuple[float, int]:
    cfg = ShardConfig(source="imagenet", root=root, out=out, resolution=resolution, samples_per_shard=100)
    start = time.perf_counter()
    info = shard_dataset(cfg, workers=workers, progress=lambda line: None)
    return info.num_samples / (time.perf_counter() - start), info.num_samples  # (rate, written)


def bench_loader(make_batches, batch: int, steps: int, warmup: int = 3) -> float:
    """Images/s into ready (images, labels) batches from a fresh pipeline, after `warmup`
    batches (worker start-up and prefetch fill are not counted)."""
    it = iter(make_batches())
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for images, _ in itertools.islice(it, steps):
        assert images.dtype == torch.float32
    rate = steps * batch / (time.perf_counter() - start)
    del it  # stops the DataLoader workers before the other pipeline is measured
    return rate


def imagefolder_batches(root: Path, resolution: int, batch: int, workers: int):
    from torchvision import datasets, transforms

    # The conventional pipeline: decode the full-size original every time, resize the short edge,
    # centre crop, to tensor in [-1, 1].
    tf = transforms.Compose([
        transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.CenterCrop(resolution),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    dataset = datasets.ImageFolder(str(root / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True)
    while True:  # infinite, like the training stream
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=800, help="synthetic source JPEGs")
    parser.add_argument("--workers", type=int, default=2, help="shard-writer threads and DataLoader workers")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating measurements of the two loaders (median reported), so both see "
                             "the same background load")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}; {args.images} source JPEGs ~500x400, "
          f"{args.workers} workers, batch {args.batch}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="biggan-bench-") as tmp:
        root = Path(tmp) / "src"
        start = time.perf_counter()
        write_sources(root, args.images)
        print(f"wrote sources in {time.perf_counter() - start:.1f}s")
        rows = []
        for res in args.resolutions:
            shard_rate, n = bench_shard(root, Path(tmp) / f"shards{res}", res, args.workers)
            shard_dir = Path(tmp) / f"shards{res}"
            wds_rates, folder_rates = [], []
            for _ in range(args.rounds):
                wds_rates.append(bench_loader(
                    lambda d=shard_dir: train_loader(d, args.batch, 0, 1, 0, 1000, args.workers),
                                              args.batch, args.steps))
                folder_rates.append(bench_loader(lambda r=res: imagefolder_batches(root, r, args.batch, args.workers),
                                                 args.batch, args.steps))
            wds_rate, folder_rate = statistics.median(wds_rates), statistics.median(folder_rates)
            rows.append((res, shard_rate, wds_rate, folder_rate))
            print(f"load average {os.getloadavg()[0]:.1f}")
            print(f"{res:>4} px: shard writing {shard_rate:7.0f} img/s | WebDataset loader {wds_rate:7.0f} img/s | "
                  f"ImageFolder+DataLoader {folder_rate:7.0f} img/s | loader speed-up {wds_rate / folder_rate:.1f}x",
                  flush=True)
    print("\n| resolution | shard writing (img/s) | WebDataset loader (img/s) "
          "| ImageFolder + DataLoader (img/s) | speed-up |")
    print("|---|---|---|---|---|")
    for res, shard_rate, wds_rate, folder_rate in rows:
        print(f"| {res} | {shard_rate:.0f} | {wds_rate:.0f} | {folder_rate:.0f} | {wds_rate / folder_rate:.1f}x |")


if __name__ == "__main__":
    main()
