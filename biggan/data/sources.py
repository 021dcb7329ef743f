"""Listing sources: ImageNet folder layouts and JFT-style multi-label manifests.

A source is a path plus label indices; nothing is decoded here (that is the shard writer's job),
so listing 1.28M ImageNet files stays a directory walk.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from biggan.data.info import SkippedEntry
from biggan.errors import DataError

# Extensions treated as images: a file with one of these that fails to decode is a counted skip;
# other files (README, .txt) are not images and are not counted as found.
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
LOC_GROUND_TRUTH = "LOC_val_solution.csv"
# Kaggle's ImageNet ships "wnid name, name, ..." per line; the demo data writes the same form.
SYNSET_NAMES = "LOC_synset_mapping.txt"


class SourceItem(BaseModel):
    """One source image: where it is, what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str  # stable, unique id: the path relative to the dataset root / manifest folder
    path: str  # absolute path
    labels: tuple[int, ...]  # class indices (one for imagenet, >= 1 for jft)


@dataclass
class SourceList:
    items: list[SourceItem]
    classes: list[str]  # index -> wnid / label name
    class_names: list[str] | None = None
    skipped: list[SkippedEntry] = field(default_factory=list)  # found but unusable at listing time
    label_frequencies: dict[str, int] | None = None
    multi_label: bool = False


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p) and not p.is_dir())


def train_wnids(root: Path) -> list[str]:
    """Class order of every ImageNet tool: the sorted training wnid folders."""
    train = Path(root) / "train"
    if not train.is_dir():
        raise DataError(f"{train} is not a folder: an ImageNet root must hold train/<wnid>/ folders")
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not wnids:
        raise DataError(f"{train} holds no class folders")
    return wnids


def _synset_names(root: Path, wnids: list[str]) -> list[str] | None:
    path = Path(root) / SYNSET_NAMES
    if not path.is_file():
        return None
    names = {}
    for line in path.read_text().splitlines():
        if line.strip():
            wnid, _, name = line.strip().partition(" ")
            names[wnid] = name.strip() or wnid
    return [names.get(w, w) for w in wnids]


def read_loc_solution(path: Path) -> dict[str, str]:
    """`LOC_val_solution.csv`: ImageId,PredictionString ("wnid x0 y0 x1 y1 wnid ...") -> wnid."""
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            tokens = (row.get("PredictionString") or "").split()
            if row.get("ImageId") and tokens:
                out[row["ImageId"]] = tokens[0]
    if not out:
        raise DataError(f"{path} has no ImageId,PredictionString rows")
    return out


def read_devkit_ground_truth(path: Path, devkit_classes: Path) -> dict[str, str]:
    """The devkit txt: line i holds the ILSVRC2012_ID (1-based, devkit class order) of
    ILSVRC2012_val_{i:08d}. `devkit_classes` lists the wnid of each ID, one per line, in that
    order (exported from the devkit's meta.mat), because the devkit order is not the sorted one."""
    order = [line.split()[0] for line in Path(devkit_classes).read_text().splitlines() if line.strip()]
    out = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        ilsvrc_id = int(line.strip())
        if not 1 <= ilsvrc_id <= len(order):
            raise DataError(f"{path}:{i}: ILSVRC2012_ID {ilsvrc_id} outside 1..{len(order)} of {devkit_classes}")
        out[f"ILSVRC2012_val_{i:08d}"] = order[ilsvrc_id - 1]
    return out


def imagenet_sources(root: Path, split: str, val_ground_truth: Path | None = None,
                     devkit_classes: Path | None = None) -> SourceList:
    """ROOT/train/<wnid>/*, ROOT/val/<wnid>/* or flat ROOT/val/* + a ground-truth file."""
    root = Path(root).resolve()
    wnids = train_wnids(root)
    index = {w: i for i, w in enumerate(wnids)}
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} is not a folder")
    items: list[SourceItem] = []
    skipped: list[SkippedEntry] = []
    folders = [p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    class_dirs = [p for p in folders if p.name in index]
    if class_dirs:
        for folder in sorted(class_dirs):
            for path in _images_in(folder):
                items.append(SourceItem(key=path.relative_to(root).as_posix(), path=str(path),
                                        labels=(index[folder.name],)))
        # Never drop data silently: images under a folder that is not a training class are
        # counted as skipped, with the reason.
        for folder in sorted(set(folders) - set(class_dirs)):
            for path in _images_in(folder):
                skipped.append(SkippedEntry(path=path.relative_to(root).as_posix(),
                                            reason=f"folder {folder.name} is not a training class"))
    else:
        truth = _flat_ground_truth(root, split_dir, val_ground_truth, devkit_classes)
        for path in _images_in(split_dir):
            wnid = truth.get(path.stem)
            rel = path.relative_to(root).as_posix()
            if wnid is None:
                skipped.append(SkippedEntry(path=rel, reason="no entry in the ground-truth file"))
            elif wnid not in index:
                skipped.append(SkippedEntry(path=rel, reason=f"ground-truth wnid {wnid} not among training classes"))
            else:
                items.append(SourceItem(key=rel, path=str(path), labels=(index[wnid],)))
    if not items and not skipped:
        raise DataError(f"{split_dir} holds no images")
    return SourceList(items=items, classes=wnids, class_names=_synset_names(root, wnids), skipped=skipped)


def _flat_ground_truth(root: Path, split_dir: Path, val_ground_truth: Path | None,
                       devkit_classes: Path | None) -> dict[str, str]:
    """image stem -> wnid for a flat val folder, from whichever ground-truth form is given/found."""
    candidates = [val_ground_truth] if val_ground_truth else [
        root / LOC_GROUND_TRUTH, split_dir / LOC_GROUND_TRUTH, root / DEVKIT_GROUND_TRUTH,
        split_dir / DEVKIT_GROUND_TRUTH,
    ]
    for gt in candidates:
        if gt is not None and Path(gt).is_file():
            if Path(gt).suffix.lower() == ".csv":
                return read_loc_solution(Path(gt))
            if devkit_classes is None:
                raise DataError(
                    f"{gt} is the devkit form (class IDs in devkit order): also give devkit_classes, "
                    "a file with the wnid of each ILSVRC2012_ID per line"
                )
            return read_devkit_ground_truth(Path(gt), Path(devkit_classes))
    raise DataError(
        f"{split_dir} has no class folders and no ground-truth file was found: give val_ground_truth "
        f"({LOC_GROUND_TRUTH} or {DEVKIT_GROUND_TRUTH} + devkit_classes)"
    )


def jft_sources(manifest: Path, top_labels: int | None = None) -> SourceList:
    """JSON lines {"path": ..., "labels": [...]}, paths relative to the manifest's folder.

    Section 5.2: the paper's JFT-300M subset kept the 8.5K most frequent of 18K labels and
    dropped images left without a label. Classes are ordered by frequency (most frequent = 0,
    ties by name) so the top-K remap is a prefix of the full table.
    """
    manifest = Path(manifest).resolve()
    base = manifest.parent
    entries: list[tuple[str, list[str]]] = []
    skipped: list[SkippedEntry] = []
    with open(manifest, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))  # UnicodeDecodeError is a ValueError
                path, labels = record["path"], record["labels"]
                if not isinstance(path, str) or not isinstance(labels, list):
                    raise TypeError("path must be a string and labels a list")
                if not path or "\0" in path:
                    raise ValueError("path is empty or holds a NUL byte")
            except (ValueError, KeyError, TypeError) as err:
                skipped.append(SkippedEntry(path=f"{manifest.name}:{lineno}", reason=f"bad manifest line: {err}"))
                continue
            # Labels as strings or ints: ints become their decimal string, one namespace.
            names = list(dict.fromkeys(str(label) for label in labels))
            entries.append((path, names))
    if not entries and not skipped:
        raise DataError(f"manifest {manifest} is empty")
    frequencies = Counter(name for _, names in entries for name in names)
    ranked = sorted(frequencies, key=lambda name: (-frequencies[name], name))
    kept = ranked if top_labels is None else ranked[:top_labels]
    index = {name: i for i, name in enumerate(kept)}
    items: list[SourceItem] = []
    seen: set[str] = set()
    for path, names in entries:
        labels = tuple(index[n] for n in names if n in index)
        if path in seen:
            skipped.append(SkippedEntry(path=path, reason="duplicate manifest entry"))
        elif not labels:
            reason = "no labels" if not names else f"no label among the top {top_labels}"
            skipped.append(SkippedEntry(path=path, reason=reason))
        else:
            items.append(SourceItem(key=path, path=str((base / path).resolve()), labels=labels))
        seen.add(path)
    return SourceList(items=items, classes=kept, skipped=skipped,
                      label_frequencies={name: frequencies[name] for name in ranked}, multi_label=True)
