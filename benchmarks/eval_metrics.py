"""Evaluation costs on this machine, on the embedded digits (32 px): dataset-classifier training,
reference statistics (uncached vs cached), IS/FID of generated samples, and nearest-neighbour
feature extraction (pixel vs EfficientNet-Lite0).

    python benchmarks/eval_metrics.py [--threads 1] [--samples 2000] [--epochs 5]

Writes the demo data and shards to a temp folder; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2000, help="generated samples scored")
    parser.add_argument("--epochs", type=int, default=5, help="dataset-classifier epochs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from biggan.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, ShardConfig
    from biggan.data.demo import write_demo_data
    from biggan.data.shard import shard_dataset
    from biggan.eval.classifier import train_classifier
    from biggan.eval.images import TensorImages, generate_images, load_shard_images
    from biggan.eval.memorization import EfficientNetBackbone, PixelBackbone
    from biggan.eval.metrics import compute_metrics, resolve_extractor
    from biggan.eval.reference import shard_reference
    from biggan.eval.scoring import prepare_generator
    from biggan.models import build_models

    root = Path(tempfile.mkdtemp(prefix="biggan-bench-eval-"))
    demo = write_demo_data(root / "demo")
    for split in ("train", "val"):
        shard_dataset(ShardConfig(source="imagenet", root=demo.imagenet_root, split=split, out=root / split,
                                  resolution=32, samples_per_shard=200))

    t = time.perf_counter()
    clf = train_classifier(root / "train", root / "clf", root / "val", epochs=args.epochs)
    print(f"dataset classifier: {args.epochs} epochs in {time.perf_counter() - t:.1f} s, "
          f"train acc {clf.train_accuracy:.3f}, val acc {clf.val_accuracy:.3f}")

    cfg = ExperimentConfig(data=DataConfig(train_shards=root / "train", val_shards=root / "val"),
                           model=ModelConfig(resolution=32, num_classes=10, ch=32, dim_z=64, shared_dim=32),
                           eval=EvalConfig(feature_extractor="dataset-classifier"))
    extractor = resolve_extractor(cfg.eval, clf.path)
    G, _ = build_models(cfg.model)
    prepare_generator(G, cfg, None)
    t = time.perf_counter()
    images, _ = generate_images(G, args.samples, 10, None, "normal", 64, 0)
    gen_s = time.perf_counter() - t
    print(f"generate {args.samples} samples (ch 32, 32 px): {gen_s:.2f} s ({args.samples / gen_s:.0f} img/s)")
    cache = root / "fidelity"
    for label in ("uncached reference", "cached reference"):
        t = time.perf_counter()
        scores = compute_metrics(TensorImages(images), extractor, shard_reference(root / "train"), cache)
        print(f"IS/FID with {label}: {time.perf_counter() - t:.2f} s (IS {scores['IS']:.3f}, FID {scores['FID']:.3f})")

    train_x, _, _ = load_shard_images(root / "train")
    for backbone in (PixelBackbone(), EfficientNetBackbone()):
        t = time.perf_counter()
        backbone(train_x[:512])
        dt = time.perf_counter() - t
        print(f"NN features {backbone.name}: {512 / dt:.0f} img/s")


if __name__ == "__main__":
    main()
