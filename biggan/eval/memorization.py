"""Memorization check: D's accuracy on real training vs real held-out images (Section 4.2) and
class-wise nearest neighbours of generated samples among the training images (Section 5.1,
Appendix A), streamed over the shards so memory does not grow with the training set.

Section 4.2: an uncollapsed D scores > 98% on training images and 50-55% on held-out ones, i.e.
D memorises the training set, yet Appendix A's nearest neighbours show G does not copy it. The
headline is therefore the real-image pair; D's accuracy on generated images is reported beside
it, not averaged in. The copy flag compares the NN distances of generated samples with those of
held-out real images (the yardstick of "a new image from the same distribution").
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import torch
from torch import Tensor

from biggan.config import ConfigError
from biggan.data.loader import eval_loader
from biggan.eval.backbones import BACKBONE_NOTES, make_backbone
from biggan.eval.neighbours import NeighbourSearch
from biggan.files import save_figure_atomic
from biggan.runs import RunStore
from biggan.sampling.images import generated_batches
from biggan.storage import Location, location

COPY_RATIO = 0.5  # the flag fires when generated samples sit at < 0.5x the held-out NN distance
GRID_ROWS = 40


@torch.no_grad()
def d_accuracy_real(D: torch.nn.Module, shard_dir: str, limit: int, batch_size: int, device) -> dict:
    """Fraction of the first `limit` real images of a shard set that D calls real (logit > 0)."""
    correct = total = 0
    for images, labels, _keys in eval_loader(shard_dir, batch_size, as_uint8=True):
        images, labels = images[: limit - total], labels[: limit - total]
        logits = D(images.to(device).float() / 127.5 - 1.0, labels.to(device))
        correct += int((logits > 0).sum())
        total += int(labels.numel())
        if total >= limit:
            break
    return {"accuracy": correct / max(total, 1), "count": total}


@torch.no_grad()
def d_accuracy_generated(D: torch.nn.Module, G: torch.nn.Module, count: int, num_classes: int, prior: str,
                         batch_size: int, seed: int, device) -> dict:
    """Fraction of `count` samples of G that D calls fake (logit < 0)."""
    correct = total = 0
    for images, labels in generated_batches(G, count, num_classes, None, prior, batch_size, seed, device):
        logits = D(images.float() / 127.5 - 1.0, labels.to(device))
        correct += int((logits < 0).sum())
        total += int(labels.numel())
    return {"accuracy": correct / max(total, 1), "count": total}


def first_per_class(shard_dir: str, per_class: int, num_classes: int, batch_size: int) -> tuple[Tensor, Tensor]:
    """Up to `per_class` images of every class, the first ones of the shard set's order (stops early)."""
    taken = {c: 0 for c in range(num_classes)}
    images, labels = [], []
    for batch, batch_labels, _keys in eval_loader(shard_dir, batch_size, as_uint8=True):
        for image, label in zip(batch, batch_labels.tolist()):
            if taken.get(label, per_class) < per_class:
                taken[label] += 1
                images.append(image)
                labels.append(label)
        if all(n >= per_class for n in taken.values()):
            break
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


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


def save_neighbour_grid(queries: Tensor, neighbours: Tensor, indices: Tensor, path: Location) -> Location:
    """One row per query: the generated image first, then its neighbours (uint8; -1 = blank)."""
    from torchvision.utils import save_image

    rows = []
    for query, images, idx in zip(queries, neighbours, indices):
        rows.append(query)
        rows.extend(image if i >= 0 else torch.zeros_like(query) for image, i in zip(images, idx.tolist()))
    buffer = io.BytesIO()
    save_image(torch.stack(rows).float() / 255.0, buffer, format="png", nrow=indices.shape[1] + 1, padding=1,
               pad_value=1.0)
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
        pairs = (("generated", results[name]["generated_nn"]), ("held-out real", results[name]["heldout_nn"]))
        for label, values in pairs:
            ax.hist([v for v in values if v != float("inf")], bins=30, alpha=0.6, label=label)
        ax.set_title(f"NN distance to train ({name})")
        ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


def nearest_neighbour_check(generated: Tensor, generated_labels: Tensor, heldout: Tensor, heldout_labels: Tensor,
                            train_chunks: Iterator[tuple[Tensor, Tensor]], backbones: list[str], k: int,
                            out_dir: Location | str, device, grid_rows: int = GRID_ROWS) -> dict:
    """Class-wise k-NN of generated and held-out images among the streamed training images, per
    backbone: a grid (generated first, then its neighbours), distances and the copy flag."""
    out_dir = location(out_dir)
    queries = torch.cat([generated, heldout])
    labels = torch.cat([generated_labels, heldout_labels]).to(device)
    models = {name: make_backbone(name, device) for name in backbones}
    searches = {name: NeighbourSearch(model(queries), labels, k, scale=model.scale,
                                      keep_images=min(grid_rows, generated.shape[0]))
                for name, model in models.items()}
    for images, chunk_labels in train_chunks:
        chunk_labels = chunk_labels.to(device)
        for name, model in models.items():
            searches[name].update(model(images), chunk_labels, images)
    results, summary = {}, {}
    n = generated.shape[0]
    for name, search in searches.items():
        distances, indices = search.result()
        grid = save_neighbour_grid(generated[: search.keep_images], search.images, indices[: search.keep_images],
                                   out_dir / f"nn_{name}.png")
        results[name] = {"generated_nn": distances[:n, 0].tolist(), "heldout_nn": distances[n:, 0].tolist()}
        summary[name] = {**copy_summary(distances[:n, 0], distances[n:, 0]), "grid": grid.uri,
                         "train_images": search.seen}
    plot = plot_distance_distributions(results, out_dir / "nn_distances.png")
    (out_dir / "nn_distances.json").write_json(results, indent=None)
    return {"backbones": summary, "distance_plot": plot.uri,
            "copying_flag": any(s["copying_flag"] for s in summary.values())}


def train_chunks(shard_dir: str, batch_size: int, limit: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    seen = 0
    for images, labels, _keys in eval_loader(shard_dir, batch_size, as_uint8=True):
        if limit is not None:
            images, labels = images[: limit - seen], labels[: limit - seen]
        yield images, labels
        seen += int(labels.numel())
        if limit is not None and seen >= limit:
            return


def memorization_check(store: RunStore, checkpoint: str | None, eval_cfg=None, classifier: str | None = None) -> dict:
    """D accuracy on real train vs real held-out images, and the NN check; writes <run>/memorization/."""
    from biggan.eval.session import open_session

    session = open_session(store, checkpoint, eval_cfg, classifier)
    cfg, device = session.cfg, session.device
    ecfg, mcfg = cfg.eval, cfg.model
    if cfg.data.val_shards is None:
        raise ConfigError("the memorization check needs held-out shards: data.val_shards is not set "
                          "(shard a val split)")
    # D was trained against the raw G, not the EMA: judge it on what it saw (Section 4.2).
    D = session.discriminator()
    limit = ecfg.d_accuracy_samples
    accuracy = {
        "train_real": d_accuracy_real(D, cfg.data.train_shards, limit, ecfg.batch_size, device),
        "val_real": d_accuracy_real(D, cfg.data.val_shards, limit, ecfg.batch_size, device),
        "generated": d_accuracy_generated(D, session.raw_generator(), limit, mcfg.num_classes, mcfg.latent,
                                          ecfg.batch_size, ecfg.seed, device),
    }
    accuracy["train_minus_val"] = accuracy["train_real"]["accuracy"] - accuracy["val_real"]["accuracy"]

    # Neighbours of what G is reported on: EMA G with standing statistics.
    G = session.generator(ecfg.truncation)
    q = ecfg.nn_queries_per_class
    labels = torch.arange(mcfg.num_classes, dtype=torch.int64).repeat_interleave(q)
    generated = torch.cat([images.cpu() for images, _y in generated_batches(
        G, labels.numel(), mcfg.num_classes, ecfg.truncation, mcfg.latent, ecfg.batch_size, ecfg.seed + 1,
        device, labels=labels)])
    heldout, heldout_labels = first_per_class(cfg.data.val_shards, q, mcfg.num_classes, ecfg.batch_size)
    backbones = ["pixel"] if ecfg.nn_backbone == "pixel" else ["pixel", ecfg.nn_backbone]
    out_dir = store.file("memorization")
    nn = nearest_neighbour_check(generated, labels, heldout, heldout_labels,
                                 train_chunks(cfg.data.train_shards, 256, ecfg.nn_train_limit), backbones,
                                 ecfg.nn_neighbours, out_dir, device)
    summary = {"checkpoint": session.info.name, "iteration": session.info.iteration, "d_accuracy": accuracy, **nn,
               "backbone_notes": {name: BACKBONE_NOTES[name] for name in backbones}}
    (out_dir / "summary.json").write_json(summary, indent=2)
    return summary
