"""Reference statistics of real shards, cached by a fingerprint of the shard set.

stylegan2-ada's metric_utils caches dataset statistics under a hash of the dataset and the
detector; here the same key goes through torch-fidelity's own cache: the reference input gets
`input2_cache_name = ref-<shard fingerprint>` and torch-fidelity appends the extractor's
registered name (which carries its weights hash, see features.py), so a different shard set or
a different extractor can never hit the same cache entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

from biggan.eval.images import LazyShardImages


def shard_fingerprint(shard_dir: str, classes: Sequence[int] | None = None, limit: int | None = None) -> str:
    """sha256 (first 16 hex digits) of the shard set's content hashes, resolution and selection."""
    from biggan.data.info import load_dataset_info

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
    """A real image set as torch-fidelity's input2 plus the cache name that identifies it."""

    images: LazyShardImages
    cache_name: str
    shard_dir: str
    size_hint: int | None  # image count known from dataset.json without reading (None for subsets)


def shard_reference(shard_dir: str, classes: Sequence[int] | None = None, limit: int | None = None) -> Reference:
    """The reference of a shard set (optionally a class subset or the first `limit` images)."""
    from biggan.data.info import load_dataset_info

    size = load_dataset_info(shard_dir).num_samples if classes is None else None
    return Reference(
        images=LazyShardImages(shard_dir, classes=classes, limit=limit),
        cache_name=f"ref-{shard_fingerprint(shard_dir, classes, limit)}",
        shard_dir=shard_dir,
        size_hint=None if size is None else (size if limit is None else min(size, limit)),
    )
