"""One pass of images through a feature extractor, batch by batch, keeping only what the metrics
need: running mean and covariance for FID (float64, merged per batch with Chan et al.'s
pairwise update, so 50,000 x 2048 features never sit in memory), and the full rows of the
layers a metric needs whole (IS's logits: N x classes; KID / precision-recall features when
asked). Images are never kept.

The figures themselves come from torch-fidelity's own functions over these (see metrics.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


class RunningMoments:
    """Mean and (unbiased) covariance of feature rows, updated batch by batch."""

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros((dim, dim), dtype=np.float64)  # sum of outer products of deviations

    def update(self, rows: Tensor) -> None:
        x = rows.detach().to("cpu", torch.float64).numpy()
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        batch_m2 = centred.T @ centred
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 += batch_m2 + np.outer(delta, delta) * (self.count * n / total)
        self.count = total

    def statistics(self) -> dict[str, np.ndarray]:
        """{"mu", "sigma"} as torch-fidelity's fid_statistics_to_metric (and the .npz files of the
        common FID tools) expect them."""
        if self.count < 2:
            raise ValueError(f"FID needs at least 2 samples, got {self.count}")
        return {"mu": self.mean.copy(), "sigma": self.m2 / (self.count - 1)}


@dataclass
class FeatureBank:
    """What one pass kept: moments per layer and full rows per layer."""

    moments: dict[str, RunningMoments] = field(default_factory=dict)
    rows: dict[str, Tensor] = field(default_factory=dict)
    count: int = 0

    def statistics(self, layer: str) -> dict[str, np.ndarray]:
        return self.moments[layer].statistics()


@torch.no_grad()
def extract(
    batches: Iterable[Tensor],  # uint8 Bx3xHxW (torch-fidelity's input format)
    module: torch.nn.Module,  # a torch-fidelity FeatureExtractorBase on `device`
    device: torch.device,
    moments: Iterable[str] = (),  # layers whose mean/covariance are accumulated
    keep: Iterable[str] = (),  # layers whose rows are kept whole (on the CPU)
) -> FeatureBank:
    """Feed every batch to the extractor as torch-fidelity does (uint8 on the device), keep the
    requested summaries, drop the images."""
    moment_layers, keep_layers = list(dict.fromkeys(moments)), list(dict.fromkeys(keep))
    bank = FeatureBank()
    kept: dict[str, list[Tensor]] = {layer: [] for layer in keep_layers}
    for batch in batches:
        features = module.convert_features_tuple_to_dict(module(batch.to(device, non_blocking=True)))
        for layer in moment_layers:
            if layer not in bank.moments:
                bank.moments[layer] = RunningMoments(features[layer].shape[1])
            bank.moments[layer].update(features[layer])
        for layer in keep_layers:
            kept[layer].append(features[layer].detach().float().cpu())
        bank.count += int(batch.shape[0])
    bank.rows = {layer: torch.cat(parts) if parts else torch.empty(0) for layer, parts in kept.items()}
    return bank
