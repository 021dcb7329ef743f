"""The dataset classifier: a small convnet trained on the dataset's own train shards.

Section 5.2: for JFT-300M "we use an Inception v2 classifier trained on JFT" as the IS/FID
feature extractor, because no standard classifier exists for that label set. We do the same
for any shard set (and for the offline demo): train a classifier on the shards, keep its
penultimate layer as the FID feature space and its logits for IS. The trained weights are
cached by the fingerprint of the shard set, so the classifier is trained once per dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.files import sha256_file
from biggan.models import seeded
from biggan.models.init import build

# Inputs larger than this are downsampled first: the classifier only has to separate the
# dataset's classes, and a small input keeps training a CPU job of minutes, not hours.
MAX_INPUT_SIZE = 64


class DatasetClassifier(nn.Module):
    """Four conv stages -> global average pool -> `feature_dim` features -> class logits."""

    def __init__(
        self,
        num_classes: int,  # classes of the shard set (logits size, softmaxed by IS)
        input_size: int,  # square side the uint8 inputs are resized to
        feature_dim: int = 128,  # width of the penultimate layer (the FID feature space)
        width: int = 32,  # channels of the first conv stage (doubled twice)
    ):
        super().__init__()
        self.num_classes = num_classes
        self.input_size = input_size
        self.feature_dim = feature_dim
        self.width = width

        def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(
            stage(3, width, 1),
            stage(width, 2 * width, 2),
            stage(2 * width, 4 * width, 2),
            stage(4 * width, 4 * width, 2),
        )
        self.features = nn.Sequential(nn.Linear(4 * width, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 Bx3xHxW (torch-fidelity's format) or float in [-1, 1] -> float at input_size."""
        x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features [B, feature_dim], logits [B, num_classes])."""
        h = self.body(self.preprocess(images)).mean(dim=(2, 3))
        feats = self.features(h)
        return feats, self.head(feats)

    def spec(self) -> dict:
        return {"num_classes": self.num_classes, "input_size": self.input_size,
                "feature_dim": self.feature_dim, "width": self.width}


@dataclass(frozen=True)
class TrainedClassifier:
    """A classifier file on disk and what identifies it."""

    path: Path  # classifier.pt: {"spec": ..., "state_dict": ...}
    weights_sha256: str  # hash of classifier.pt: part of the torch-fidelity extractor name
    train_accuracy: float
    val_accuracy: float | None
    cached: bool  # True when an existing file was reused


def load_classifier(path: Path) -> DatasetClassifier:
    """Rebuild a saved classifier in eval mode (state dicts only, weights_only load)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = DatasetClassifier(**blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _accuracy(model: DatasetClassifier, batches, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels, _keys in batches:
            _feats, logits = model(images.to(device))
            labels = labels.to(device)
            correct += int((logits.argmax(1) == labels).sum())
            total += int(labels.numel())
    return correct / max(total, 1)


def train_classifier(
    train_shards: str,  # shard set to learn (its dataset.json gives classes and resolution)
    out_dir: Path,  # cache folder for this classifier (reused when classifier.pt exists)
    val_shards: str | None = None,  # held-out split for a reported accuracy
    epochs: int = 10,  # passes over the train shards
    batch_size: int = 64,
    lr: float = 3e-3,  # Adam; 5 epochs reach ~90% val accuracy on the digits
    seed: int = 0,
    device: torch.device | str = "cpu",  # eval.device, resolved
) -> TrainedClassifier:
    """Train (or reuse) the dataset classifier; writes classifier.pt and meta.json atomically."""
    from biggan.data.info import load_dataset_info
    from biggan.data.loader import eval_loader

    out_dir = Path(out_dir)
    path = out_dir / "classifier.pt"
    meta_path = out_dir / "meta.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return TrainedClassifier(path=path, weights_sha256=sha256_file(path),
                                 train_accuracy=meta["train_accuracy"], val_accuracy=meta["val_accuracy"],
                                 cached=True)

    info = load_dataset_info(train_shards)
    device = torch.device(device)
    # torch's default initialisation, drawn from the seed alone (no global RNG: nodes run in threads).
    model = build(DatasetClassifier, num_classes=info.num_classes, input_size=min(info.resolution, MAX_INPUT_SIZE),
                  generator=seeded(seed), orthogonal=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _epoch in range(epochs):
        model.train()
        for images, labels, _keys in eval_loader(train_shards, batch_size, as_uint8=True):
            # eval_loader's order is fixed; permuting inside the batch is enough for BN, and
            # a random 2-pixel translation keeps the small net from memorising pixels.
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            images = torch.roll(images, shifts=shift, dims=(2, 3)).to(device)
            _feats, logits = model(images)
            loss = F.cross_entropy(logits, labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    model.eval()
    train_acc = _accuracy(model, eval_loader(train_shards, batch_size, as_uint8=True), device)
    val_acc = (_accuracy(model, eval_loader(val_shards, batch_size, as_uint8=True), device)
               if val_shards is not None else None)
    model.cpu()

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"spec": model.spec(), "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)
    meta = {"train_accuracy": train_acc, "val_accuracy": val_acc, "epochs": epochs, "seed": seed,
            "train_shards": str(train_shards), "weights_sha256": sha256_file(path)}
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_meta, meta_path)
    return TrainedClassifier(path=path, weights_sha256=meta["weights_sha256"], train_accuracy=train_acc,
                             val_accuracy=val_acc, cached=False)
