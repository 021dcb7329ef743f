"""Peak memory of the memorization node on a large shard set: it streams the training shards, so
its peak should not grow with their size.

Writes a synthetic shard set (default 200,000 training and 10,000 held-out images at 64 px,
100 classes of smooth patterns, real WebDataset tars + dataset.json), a run with a random small
G and D at 64 px, then runs the memorization node in a child process and prints its time and
peak RSS (getrusage). `--train` sets the training-set size, so two sizes show the flat peak.

    python benchmarks/memorization_scale.py                       # 200,000 images, pixel neighbours
    python benchmarks/memorization_scale.py --train 20000 --backbone efficientnet-lite0
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_fixtures import random_weights_run  # benchmarks/, on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
CLASSES = 100


def write_split(folder: Path, count: int, seed: int, per_shard: int = 5000) -> None:
    """Tars of `count` 64 px PNGs (class = a smooth pattern, plus noise) and their dataset.json."""
    import numpy as np
    import webdataset as wds
    from PIL import Image

    from biggan.data.info import DatasetInfo, ShardEntry, save_dataset_info

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    shards = []
    for start in range(0, count, per_shard):
        name = f"shard-{start // per_shard:06d}.tar"
        n = min(per_shard, count - start)
        with open(folder / name, "wb") as handle:
            sink = wds.TarWriter(handle, mtime=0, encoder=False)
            for i in range(start, start + n):
                label = int(rng.integers(CLASSES))
                phase = label / CLASSES * 6.28
                base = np.stack([np.sin(8 * xx + phase), np.cos(6 * yy - phase), np.sin(4 * (xx + yy) + 2 * phase)], -1)
                image = ((base * 0.4 + 0.5 + rng.normal(0, 0.03, base.shape)).clip(0, 1) * 255).astype(np.uint8)
                png = io.BytesIO()
                Image.fromarray(image).save(png, format="png", compress_level=1)
                sink.write({"__key__": f"s{i:09d}", "png": png.getvalue(), "cls": str(label).encode(),
                            "src": f"synthetic/{i}.png".encode()})
            sink.close()
        data = (folder / name).read_bytes()
        shards.append(ShardEntry(name=name, num_samples=n, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    save_dataset_info(folder, DatasetInfo(source="imagenet", split=folder.name, num_samples=count, num_found=count,
                                          num_classes=CLASSES, resolution=64, format="png", multi_label=False,
                                          classes=[f"c{c:03d}" for c in range(CLASSES)], shards=shards, skipped=[],
                                          seed=seed))


def prepare(work: Path, train: int, heldout: int, backbone: str) -> None:

    from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig

    if not (work / "train" / "dataset.json").is_file():
        write_split(work / "train", train, seed=1)
        write_split(work / "val", heldout, seed=2)
    cfg = ExperimentConfig(name="bench", run_root=str(work / "runs"),
                           data=DataConfig(train_shards=str(work / "train"), val_shards=str(work / "val")),
                           model=ModelConfig(resolution=64, num_classes=CLASSES, ch=4, dim_z=120,
                                             g_attention=None, d_attention=None),
                           eval=EvalConfig(nn_backbone=backbone, nn_queries_per_class=4, batch_size=100,
                                           d_accuracy_samples=2_000, cache_dir=work / "cache"))
    random_weights_run(cfg)


def child(work: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from biggan.eval.memorization import memorization_check
    from biggan.runs import RunStore

    started = time.perf_counter()
    summary = memorization_check(RunStore(str(work / "runs" / "bench")), None, None)
    return {"seconds": time.perf_counter() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "train_images": {name: s["train_images"] for name, s in summary["backbones"].items()},
            "d_accuracy": {k: v["accuracy"] for k, v in summary["d_accuracy"].items() if isinstance(v, dict)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200_000, help="training images")
    parser.add_argument("--heldout", type=int, default=10_000, help="held-out images")
    parser.add_argument("--backbone", default="pixel", choices=["pixel", "efficientnet-lite0"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="biggan-memorization-"))
    if args.child:
        print(json.dumps(child(work, args.threads)))
        return
    started = time.perf_counter()
    prepare(work, args.train, args.heldout, args.backbone)
    print(f"shard set: {args.train} training + {args.heldout} held-out images at 64 px, {CLASSES} classes "
          f"({time.perf_counter() - started:.0f} s to write); work dir {work}")
    done = subprocess.run([sys.executable, __file__, "--child", "--work", str(work), "--threads", str(args.threads)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"memorization node ({args.backbone} neighbours, {args.threads} threads): {result['seconds']:.0f} s, "
          f"peak RSS {result['peak_rss_mb']:.0f} MB")
    print(f"  training images searched: {result['train_images']}; D accuracy: {result['d_accuracy']}")


if __name__ == "__main__":
    main()
