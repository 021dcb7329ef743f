"""The embedded demo data: scikit-learn's bundled handwritten digits (1,797 8x8 images, 10
classes, shipped inside the wheel, so no network) written as an ImageNet-style tree and a
JFT-style multi-label manifest over the same images."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from biggan.data.sources import SYNSET_NAMES

DEMO_SIZE = 32  # written size: the shard step then area-resizes to the target resolution
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class DemoData:
    root: Path  # the folder passed to write_demo_data
    imagenet_root: Path  # train/<wnid>/*.png and val/<wnid>/*.png
    manifest: Path  # JFT-style JSON lines over the training images (digit + parity labels)
    val_manifest: Path  # the same over the held-out images
    num_train: int
    num_val: int


def wnid(digit: int) -> str:
    """Sortable wnid-like folder names, so sorted order == digit order."""
    return f"d{digit:07d}"


def _to_png(pixels: np.ndarray, path: Path) -> None:
    # sklearn's digits are 0..16 ink levels; scale to 8-bit, bicubic-upscale from 8x8 (smooth strokes).
    small = Image.fromarray(np.rint(pixels * (255.0 / 16.0)).astype(np.uint8), mode="L")
    small.resize((DEMO_SIZE, DEMO_SIZE), Image.BICUBIC).save(path, format="PNG")


def write_demo_data(out: Path, seed: int = 0) -> DemoData:
    """Write OUT/imagenet/{train,val}/<wnid>/digit_NNNN.png, OUT/manifest.jsonl, OUT/manifest-val.jsonl.

    The val split is stratified (20% of every class, chosen with `seed`).
    """
    from sklearn.datasets import load_digits  # heavy import, only needed here

    out = Path(out).resolve()
    digits = load_digits()
    images, targets = digits.images, digits.target.astype(int)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(targets), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(targets == digit)
        rng.shuffle(members)
        is_val[members[: int(round(VAL_FRACTION * len(members)))]] = True

    imagenet = out / "imagenet"
    if imagenet.exists() and not (imagenet / SYNSET_NAMES).is_file():
        raise FileExistsError(f"{imagenet} exists and is not demo data; choose another --out")
    # Build the tree under a temporary name and swap it in, so a rerun (another seed) never
    # leaves an image of the old split behind in the other split.
    building = out / f".imagenet.tmp-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for i, (pixels, digit) in enumerate(zip(images, targets)):
        split = "val" if is_val[i] else "train"
        folder = building / split / wnid(digit)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"digit_{i:04d}.png"
        _to_png(pixels, path)
        # Second label: parity, so every image has two labels (Section 5.2's multi-label setting).
        labels = [f"digit {digit}", "even" if digit % 2 == 0 else "odd"]
        final = imagenet / split / wnid(digit) / path.name
        lines[split].append(json.dumps({"path": final.relative_to(out).as_posix(), "labels": labels}))
    (building / SYNSET_NAMES).write_text("".join(f"{wnid(d)} digit {d}\n" for d in range(10)))
    if imagenet.exists():
        shutil.rmtree(imagenet)
    os.replace(building, imagenet)
    manifest, val_manifest = out / "manifest.jsonl", out / "manifest-val.jsonl"
    manifest.write_text("\n".join(lines["train"]) + "\n")
    val_manifest.write_text("\n".join(lines["val"]) + "\n")
    return DemoData(root=out, imagenet_root=imagenet, manifest=manifest, val_manifest=val_manifest,
                    num_train=len(lines["train"]), num_val=len(lines["val"]))
