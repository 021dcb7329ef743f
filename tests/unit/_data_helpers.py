"""Small synthetic image trees for the data tests (unique images, so samples can be identified)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def unique_image(index: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A flat RGB image whose colour encodes `index` (survives crop + area resize exactly)."""
    return Image.new("RGB", size, (index % 256, (index // 256) % 256, 7))


def image_id(chw: np.ndarray) -> int:
    """Inverse of unique_image on a decoded uint8 3xHxW sample."""
    return int(chw[0, 0, 0]) + 256 * int(chw[1, 0, 0])


def write_tree(root: Path, wnids: list[str], per_class: int, split: str = "train", start: int = 0) -> dict[str, int]:
    """ROOT/split/<wnid>/img_N.png; returns {relative path: image index}."""
    out = {}
    index = start
    for wnid in wnids:
        folder = root / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(per_class):
            path = folder / f"img_{index:05d}.png"
            unique_image(index).save(path)
            out[path.relative_to(root).as_posix()] = index
            index += 1
    return out


def write_manifest(path: Path, entries: list[tuple[str, list]]) -> None:
    path.write_text("".join(json.dumps({"path": p, "labels": labels}) + "\n" for p, labels in entries))
