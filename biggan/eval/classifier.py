"""The dataset classifier: a small convnet trained on the dataset's own train shards.

Section 5.2: for JFT-300M "we use an Inception v2 classifier trained on JFT" as the IS/FID
feature extractor, because no standard classifier exists for that label set. We do the same
for any shard set (and for the offline demo): train a classifier on the shards, keep its
penultimate layer as the FID feature space and its logits for IS. The trained weights are
cached by the fingerprint of the shard set, so the classifier is trained once per dataset.

FIDs compare only under one classifier file (measured: 584 against 821 for the same untrained G
scored with classifiers trained at 1 and at 2 threads), so the file must not depend on where it
was trained. It is trained in a child process pinned to one thread, with deterministic
algorithms (on CUDA too: cuBLAS workspace set, cuDNN autotuning off): the same bytes from any
caller, whatever its thread count (tests/unit/test_eval_classifier_determinism.py). A file
trained on a GPU is not the CPU's (the cache key names the device type); within one device type
the recipe is reproducible, and every score record carries the file's fingerprint
(biggan.eval.history.record_meta), so a comparison can check it scored alike.

The recipe (not the paper's; Section 5.2 only says "a classifier trained on" the data): Adam
with a cosine decay of the learning rate to zero, so training ends at a stable point, then the
BatchNorm statistics recomputed over the whole train split in one pass ("precise BN"): with the
running averages of the last few batches, the eval-mode accuracy of the same digits recipe swung
between 0.72 and 0.95 from epoch to epoch; with both, 0.98 on the held-out split.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.errors import UserError
from biggan.files import sha256_file
from biggan.models import seeded
from biggan.models.init import build

# Inputs larger than this are downsampled first: the classifier only has to separate the
# dataset's classes, and a small input keeps training a CPU job of minutes, not hours.
MAX_INPUT_SIZE = 64
# The training recipe's version: part of the cache key, so a file from an older recipe is never reused.
RECIPE = 2


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


class ClassifierTrainingFailed(UserError, RuntimeError):
    """The child process that trains the classifier failed on the user's data or settings (one line)."""


def train_classifier(
    train_shards: str,  # shard set to learn (its dataset.json gives classes and resolution)
    out_dir: Path,  # cache folder for this classifier (reused when classifier.pt exists)
    val_shards: str | None = None,  # held-out split for a reported accuracy
    epochs: int = 10,  # passes over the train shards
    batch_size: int = 64,
    lr: float = 3e-3,  # Adam's peak rate, decayed to 0 (cosine); 5 epochs reach ~95% val accuracy on the digits
    seed: int = 0,
    device: torch.device | str = "cpu",  # eval.device, resolved
) -> TrainedClassifier:
    """Train (or reuse) the dataset classifier; writes classifier.pt and meta.json atomically.

    The training runs in a child process on one thread with deterministic algorithms (module
    docstring), so the file is the same whatever this process's thread count."""
    out_dir = Path(out_dir)
    path = out_dir / "classifier.pt"
    meta_path = out_dir / "meta.json"
    cached = path.is_file() and meta_path.is_file()
    if not cached:
        args = {"train_shards": str(train_shards), "out_dir": str(out_dir), "val_shards": val_shards,
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "device": str(device)}
        _run_child(args)
    meta = json.loads(meta_path.read_text())
    return TrainedClassifier(path=path, weights_sha256=sha256_file(path), train_accuracy=meta["train_accuracy"],
                             val_accuracy=meta["val_accuracy"], cached=cached)


def _run_child(args: dict) -> None:
    """`_child_main` in a fresh interpreter with one thread; its failure raised here in one line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # Deterministic cuBLAS (torch.use_deterministic_algorithms on CUDA asks for it).
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
           # The child imports the biggan this process imported (a checkout on the path, not another install).
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory(prefix="biggan-classifier-") as tmp:
        result_path = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, "-c", "from biggan.eval.classifier import _child_main; _child_main()",
                               json.dumps(args), str(result_path)], env=env, capture_output=True, text=True)
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if done.returncode == 0 and result.get("ok"):
        return
    if result.get("user_error"):
        raise ClassifierTrainingFailed(f"dataset classifier: {result['error']}")
    tail = "\n".join((done.stderr or "").strip().splitlines()[-15:])
    raise RuntimeError(f"training the dataset classifier failed (exit {done.returncode}): "
                       f"{result.get('error', 'no result')}\n{tail}")


def _child_main() -> None:
    """Entry point of the child: argv = [json args, result file]."""
    args, result_path = json.loads(sys.argv[1]), Path(sys.argv[2])
    try:
        _deterministic(args["device"])
        _train(**args)
        result = {"ok": True}
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it in one line
        result = {"ok": False, "error": " ".join(str(err).split()) or type(err).__name__,
                  "user_error": isinstance(err, UserError)}
        import traceback

        traceback.print_exc()
    result_path.write_text(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


def _deterministic(device: str) -> None:
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _train(train_shards: str, out_dir: str, val_shards: str | None, epochs: int, batch_size: int, lr: float,
           seed: int, device: str) -> None:
    """The recipe (module docstring), in the child process."""
    from biggan.data.info import load_dataset_info
    from biggan.data.loader import eval_loader

    info = load_dataset_info(train_shards)
    dev = torch.device(device)
    # torch's default initialisation, drawn from the seed alone (no global RNG).
    model = build(DatasetClassifier, num_classes=info.num_classes, input_size=min(info.resolution, MAX_INPUT_SIZE),
                  generator=seeded(seed), orthogonal=False).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(info.num_samples / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    generator = torch.Generator().manual_seed(seed)
    for _epoch in range(epochs):
        model.train()
        for images, labels, _keys in eval_loader(train_shards, batch_size, as_uint8=True):
            # eval_loader's order is fixed; permuting inside the batch is enough for BN, and
            # a random 2-pixel translation keeps the small net from memorising pixels.
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            images = torch.roll(images, shifts=shift, dims=(2, 3)).to(dev)
            _feats, logits = model(images)
            loss = F.cross_entropy(logits, labels.to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    _precise_batchnorm(model, eval_loader(train_shards, batch_size, as_uint8=True), dev)

    train_acc = _accuracy(model, eval_loader(train_shards, batch_size, as_uint8=True), dev)
    val_acc = (_accuracy(model, eval_loader(val_shards, batch_size, as_uint8=True), dev)
               if val_shards is not None else None)
    model.cpu()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path, meta_path = out / "classifier.pt", out / "meta.json"
    # Saved through a buffer: torch.save names the zip's inner folder after the file it writes, and a
    # temp file's name (unique per process, so two trainers of one key never share it) would change the bytes.
    buffer = io.BytesIO()
    torch.save({"spec": model.spec(), "state_dict": model.state_dict()}, buffer)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    meta = {"train_accuracy": train_acc, "val_accuracy": val_acc, "epochs": epochs, "seed": seed, "lr": lr,
            "batch_size": batch_size, "recipe": RECIPE, "device": dev.type, "train_shards": str(train_shards),
            "weights_sha256": sha256_file(path)}
    tmp_meta = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_meta, meta_path)


@torch.no_grad()
def _precise_batchnorm(model: DatasetClassifier, batches, device: torch.device) -> None:
    """BatchNorm running statistics as the exact average over one pass of the train split."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass
    model.train()
    for images, _labels, _keys in batches:
        model(images.to(device))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
