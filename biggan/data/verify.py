"""Shards are checked before they are trusted: each tar's size against dataset.json (one listing
of the shard folder, cheap even on an object store) and, when asked, its sha256 (reads every
byte: `--verify`, and the default before reference statistics are computed and cached).

A damaged tar stops the run with one line naming it, or, with `data.on_damaged_shard=skip`,
is left out with a warning and counted (a training run reports the count in every stats record
and in its status). Tars that turn out unreadable mid-stream get the same choice from the
loaders' handlers below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from biggan.data.info import DatasetInfo, load_dataset_info
from biggan.errors import DamagedShard, DataError
from biggan.storage import Location, location

log = logging.getLogger("biggan.data")
Policy = Literal["stop", "skip"]


@dataclass(frozen=True)
class ShardProblem:
    uri: str  # the tar
    reason: str  # "missing", "is 123 bytes, dataset.json says 456", "sha256 differs from dataset.json"
    samples: int  # samples lost with it


def check_shards(shard_dir: str, info: DatasetInfo | None = None, hashes: bool = False) -> list[ShardProblem]:
    """Every non-empty tar of the set that is missing, of the wrong size or (with `hashes`) of the
    wrong sha256. Sets written before sizes were recorded are checked for presence only."""
    root = location(shard_dir)
    info = info or load_dataset_info(root)
    sizes = {loc.name: size for loc, size in root.files(recursive=False)}
    problems = []
    for shard in info.shards:
        if shard.num_samples == 0:
            continue
        uri = (root / shard.name).uri
        if shard.name not in sizes:
            problems.append(ShardProblem(uri, "is missing", shard.num_samples))
        elif shard.size is not None and sizes[shard.name] != shard.size:
            problems.append(ShardProblem(uri, f"is {sizes[shard.name]} bytes, dataset.json says {shard.size}",
                                         shard.num_samples))
        elif hashes and (root / shard.name).sha256() != shard.sha256:
            problems.append(ShardProblem(uri, "has a sha256 that differs from dataset.json", shard.num_samples))
    return problems


def usable_shards(shard_dir: str, policy: Policy, hashes: bool = False,
                  warn: Callable[[str], None] = log.warning) -> tuple[list[Location], list[ShardProblem]]:
    """(tars to read, tars left out) under `policy`: "stop" raises DamagedShard at the first problem."""
    root = location(shard_dir)
    info = load_dataset_info(root)
    if not any(shard.num_samples for shard in info.shards):
        raise DataError(f"{root.uri} holds no samples")
    problems = check_shards(root.uri, info, hashes)
    if problems and policy == "stop":
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedShard(f"shard {first.uri} {first.reason}{more}: reshard it (`biggan shard` rewrites only "
                           f"damaged tars) or set data.on_damaged_shard=skip to train without it")
    for problem in problems:
        warn(f"[warning] skipping shard {problem.uri}: it {problem.reason} ({problem.samples} samples left out)")
    bad = {p.uri for p in problems}
    kept = [loc for loc in info.shard_locations(root) if loc.uri not in bad]
    if not kept:
        raise DamagedShard(f"every shard of {root.uri} is damaged or missing")
    return kept, problems


def stream_handler(policy: Policy) -> Callable[[Exception], bool]:
    """WebDataset exception handler: stop with one line naming the tar, or warn and go on."""
    def handle(exn: Exception) -> bool:
        if isinstance(exn, DamagedShard):
            message = str(exn.args[0])
        else:
            source = next((a for a in reversed(exn.args) if isinstance(a, str) and a.endswith(".tar")), "a shard")
            message = f"shard {source} does not read: {type(exn).__name__}: {str(exn.args[0]) if exn.args else exn}"
        if policy == "stop":
            raise DamagedShard(message) from None
        log.warning("[warning] %s; skipping the rest of it", message)
        return True

    return handle
