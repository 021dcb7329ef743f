"""Reference statistics of real images: streamed from a shard set once and cached by a
fingerprint of the set and the extractor (stylegan2-ada caches dataset statistics the same way),
or read from a published `.npz` (mu, sigma), the layout torch-fidelity and the common FID tools
write, so scores can be compared with the literature.

A shard set's cache entry is `<cache>/reference/ref-<set fingerprint>-<extractor name>.npz`;
the extractor's registered name carries the hash of its weights (extractors.py), so a different
shard set or a different extractor never hits the same entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from biggan.config import ConfigError
from biggan.data.info import load_dataset_info
from biggan.eval.feature_pass import FeatureBank, extract


def shard_fingerprint(shard_dir: str, classes: Iterable[int] | None = None, limit: int | None = None) -> str:
    """sha256 (first 16 hex digits) of the shard set's content hashes, resolution and selection."""
    info = load_dataset_info(shard_dir)
    payload = {
        "shards": sorted((shard.name, shard.sha256) for shard in info.shards),
        "resolution": info.resolution,
        "num_samples": info.num_samples,
        "classes": sorted(set(classes)) if classes is not None else None,
        "limit": limit,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Reference:
    """What FID (and KID / precision-recall) compare generated features against."""

    name: str  # cache identity: ref-<fingerprint>-<extractor> or published-<sha256[:12]>
    statistics: dict[str, np.ndarray]  # {"mu", "sigma"} of the FID layer, float64
    num_samples: int  # real images behind the statistics
    rows: dict[str, Tensor] = field(default_factory=dict)  # full feature rows (KID / PR), when computed
    source: str = ""  # shard set URI or .npz path


def published_reference(path: Path, feature_dim: int | None = None) -> Reference:
    """Statistics computed elsewhere (`np.savez(path, mu=..., sigma=...)`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"eval.reference_stats = {str(path)!r}: the file does not exist")
    with np.load(path) as blob:
        if "mu" not in blob or "sigma" not in blob:
            raise ConfigError(f"eval.reference_stats {path} has no 'mu' and 'sigma' arrays (keys: {list(blob)})")
        mu, sigma = blob["mu"].astype(np.float64), blob["sigma"].astype(np.float64)
        count = int(blob["num_samples"]) if "num_samples" in blob else 0
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ConfigError(f"eval.reference_stats {path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    if feature_dim is not None and mu.shape[0] != feature_dim:
        raise ConfigError(f"eval.reference_stats {path} has {mu.shape[0]}-d statistics; the extractor's FID layer "
                         f"is {feature_dim}-d: they come from another feature extractor")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Reference(name=f"published-{digest}", statistics={"mu": mu, "sigma": sigma}, num_samples=count,
                     source=str(path))


def shard_reference(
    shard_dir: str,
    extractor_name: str,  # registered name (carries the weights hash)
    module_factory: Callable[[], torch.nn.Module],  # builds the extractor on demand (cache misses only)
    fid_layer: str,
    row_layers: tuple[str, ...],  # layers kept whole for KID / precision-recall ("" = none)
    cache_root: Path,
    device: torch.device,
    batch_size: int,
    rows_limit: int | None,  # at most this many rows kept (KID / PR subsample the reference anyway)
    verify: bool = True,  # check every tar's sha256 before computing (the cache is keyed by those hashes)
) -> Reference:
    """The reference of a whole shard set, streamed once, then read from the cache."""
    name = f"ref-{shard_fingerprint(shard_dir)}-{extractor_name}"
    stats_path = Path(cache_root) / "reference" / f"{name}.npz"
    rows_path = Path(cache_root) / "reference" / f"{name}-rows{rows_limit}.pt"
    need_rows = bool(row_layers) and not rows_path.is_file()
    if stats_path.is_file() and not need_rows:
        with np.load(stats_path) as blob:
            stats = {"mu": blob["mu"], "sigma": blob["sigma"]}
            count = int(blob["num_samples"])
        rows = torch.load(rows_path, weights_only=True) if row_layers else {}
        return Reference(name=name, statistics=stats, num_samples=count, rows=rows, source=shard_dir)

    if verify:
        from biggan.data.verify import usable_shards

        usable_shards(shard_dir, "stop", hashes=True)  # a damaged tar is one line naming it
    bank = extract(_real_batches(shard_dir, batch_size, None), module_factory(), device,
                   moments=[fid_layer], keep=row_layers)
    stats = bank.statistics(fid_layer)
    rows = {layer: bank.rows[layer][:rows_limit] for layer in row_layers}
    _atomic(stats_path, lambda tmp: np.savez(tmp, mu=stats["mu"], sigma=stats["sigma"], num_samples=bank.count))
    if row_layers:
        _atomic(rows_path, lambda tmp: torch.save(rows, tmp))
    return Reference(name=name, statistics=stats, num_samples=bank.count, rows=rows, source=shard_dir)


def real_logits(shard_dir: str, extractor_name: str, module_factory: Callable[[], torch.nn.Module],
                layer: str, cache_root: Path, device: torch.device, batch_size: int) -> Tensor:
    """IS-layer outputs of every real image of a shard set (cached): Table 2 compares against
    the validation data's IS with the same extractor."""
    path = Path(cache_root) / "reference" / f"logits-{shard_fingerprint(shard_dir)}-{extractor_name}-{layer}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    bank: FeatureBank = extract(_real_batches(shard_dir, batch_size, None), module_factory(), device, keep=[layer])
    _atomic(path, lambda tmp: torch.save(bank.rows[layer], tmp))
    return bank.rows[layer]


def _real_batches(shard_dir: str, batch_size: int, limit: int | None) -> Iterable[Tensor]:
    from biggan.data.loader import eval_loader

    seen = 0
    for images, _labels, _keys in eval_loader(shard_dir, batch_size, as_uint8=True):
        if limit is not None and seen >= limit:
            return
        yield images
        seen += int(images.shape[0])


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
