"""The global batch as a function of the seed and the iteration alone, whatever the number of workers.

A run reads its data from `S = data.streams` streams (the lcm of the worker counts its range allows,
fixed when it starts). Stream s is its share of the shards in a seeded order (biggan.data.loader) and
a latent generator; at every micro-step it gives B / (A x S) real images and as many fakes' (z, y),
and worker r of W reads streams [r S/W, (r+1) S/W) (biggan.train.dist.my_streams). The global batch
of a micro-step is therefore every stream's share, the same multiset of (image, label, latent) at any
W; only the summation order of the all-reduces and of cross-replica BN's statistics over W workers
differs (docs/elastic.md states the tolerance). With one stream per worker this is the per-rank
stream every run had before streams existed.

Segments: the streams are seeded from (seed, stream, iteration, rollbacks so far) where a segment
starts: at the start of a run, at every checkpoint of `checkpoint_every`, at a rollback's target.
A resume from such a checkpoint is then exact (biggan.train.loop). A checkpoint taken between two
(a preemption notice: the loop checkpoints at the next step boundary) must not reseed, or the run
would read other data than an uninterrupted one: it keeps where its segment started and each
stream's latent generator state, and a resume from it passes over the real images the segment had
read (not decoded) and restores the generators.

D's head dropout draws its masks from the worker's first stream's generator (TrainStep's
`latent_rng`): with train.d_dropout_keep < 1 the masks, and so the result, depend on the world size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.config.cluster import default_streams
from biggan.sampling.latents import sample_latents
from biggan.train import dist

log = logging.getLogger("biggan.train")

# (cfg, batch, stream, streams, seed) -> infinite (images [-1, 1], labels) batches of one stream.
RealStreamFn = Callable[[ExperimentConfig, int, int, int, int], Iterator]


def segment_seed(seed: int, stream: int, iteration: int, rollbacks: int = 0) -> int:
    """Seed of data stream `stream` for the segment starting at `iteration`, after `rollbacks`
    rollbacks (0: the seeds every run had before rollbacks existed; with one stream per worker,
    the stream is the rank)."""
    return (seed * 1_000_003 + stream * 7_919 + iteration + rollbacks * 1_000_000_007) % (2**63 - 1)


@dataclass(frozen=True)
class StreamPlan:
    """How this worker's share of the global batch is read."""

    streams: int  # data streams of the run (S)
    mine: tuple[int, ...]  # the streams this worker reads
    per_stream: int  # images (and latents) a stream gives per micro-step: B / (A x S)
    micro_batch: int  # this worker's micro-batch: per_stream x len(mine) = B / (A x W)
    shuffle_buffer: int  # samples each of a stream's readers holds: at the largest size, a worker holds what
    # data.shuffle_buffer says per loader worker (a smaller world holds more streams, as it holds more images)

    @classmethod
    def of(cls, cfg: ExperimentConfig, rank: int, world: int) -> StreamPlan:
        streams = run_streams(cfg)
        mine = dist.my_streams(streams, rank, world)
        per_step = dist.micro_batch_size(cfg.train.batch_size, 1, cfg.train.accumulation)
        if per_step % streams:
            raise ValueError(f"{streams} data streams cannot share {per_step} images per micro-step evenly")
        largest = max(cfg.cluster.max_workers, world, 1)
        buffer = max(1, cfg.data.shuffle_buffer * largest // streams) if cfg.data.shuffle_buffer else 0
        return cls(streams=streams, mine=tuple(mine), per_stream=per_step // streams,
                   micro_batch=per_step // streams * len(mine), shuffle_buffer=buffer)


def run_streams(cfg: ExperimentConfig) -> int:
    """data.streams, or (a config not resolved by biggan.experiment) the lcm of the range's sizes."""
    return cfg.data.streams if cfg.data.streams is not None else default_streams(cfg.cluster.num_workers)


class LatentSampler:
    """(z, y) for fakes: z from the model's prior (Appendix E), y uniform over classes."""

    def __init__(self, dim_z: int, num_classes: int, prior: str, device: torch.device):
        self.dim_z, self.num_classes, self.prior, self.device = dim_z, num_classes, prior, device
        self.progress = 0.0  # fraction of training done: Appendix E's variance annealing follows it

    def __call__(self, batch: int, generator: torch.Generator):
        z = sample_latents(batch, self.dim_z, None, self.prior, generator, self.device, progress=self.progress)
        y = torch.randint(self.num_classes, (batch,), generator=generator, device=self.device)
        return z, y


class StreamLatents(LatentSampler):
    """The fakes' (z, y) of a worker's streams: each stream's share from its own generator, joined in
    stream order. TrainStep passes its `latent_rng`, which is the first stream's generator."""

    def __init__(self, dim_z: int, num_classes: int, prior: str, device: torch.device,
                 generators: list[torch.Generator], per_stream: int):
        super().__init__(dim_z, num_classes, prior, device)
        self.generators = generators  # one per stream of this worker, in stream order
        self.per_stream = per_stream  # latents per stream per micro-step

    def __call__(self, batch: int, generator: torch.Generator):
        if len(self.generators) == 1:
            return super().__call__(batch, generator)
        if generator is not self.generators[0] or batch != self.per_stream * len(self.generators):
            raise ValueError(f"a worker of {len(self.generators)} streams draws {self.per_stream} latents from "
                             f"each, not {batch} from one generator")
        parts = [super(StreamLatents, self).__call__(self.per_stream, g) for g in self.generators]
        return torch.cat([z for z, _ in parts]), torch.cat([y for _, y in parts])


@dataclass
class Segment:
    start: int  # iteration the streams were seeded at
    rollbacks: int  # rollbacks counted in their seeds


class DataStreams:
    """This worker's streams: seeded at segment starts, positioned mid-segment on a resume from a
    preemption checkpoint, described in every checkpoint (`checkpoint_data`)."""

    def __init__(self, cfg: ExperimentConfig, plan: StreamPlan, generators: list[torch.Generator],
                 real_fn: RealStreamFn | None, device: torch.device):
        self.cfg = cfg  # the run (seed, shards, loader settings)
        self.plan = plan  # which streams, how many images each
        self.generators = generators  # the streams' latent generators (the first is TrainStep's latent_rng)
        self.real_fn = real_fn  # a test's stream builder; None = the shard loader
        self.device = device
        self.segment = Segment(0, 0)  # the running segment

    def restart(self, iteration: int, rollbacks: int) -> Iterator:
        """A new segment at `iteration`: every stream reseeded; the new real-image stream."""
        self.segment = Segment(iteration, rollbacks)
        for stream, generator in zip(self.plan.mine, self.generators):
            generator.manual_seed(self._seed(stream))
        return self._reals(skip_batches=0)

    def resume(self, data: dict[str, Any], start: int, rollbacks: int) -> Iterator:
        """The streams as they were at the checkpoint of iteration `start` whose "data" is `data`."""
        if not self._resumes_mid_segment(data, start, rollbacks):
            return self.restart(start, rollbacks)
        self.segment = Segment(int(data["segment_start"]), rollbacks)
        states = data["latent_states"]
        for stream, generator in zip(self.plan.mine, self.generators):
            # A copy: set_state on a view into a bigger tensor crashed the process (torch 2.14, CPU generator).
            generator.set_state(states[stream].cpu().clone())
        done = start - self.segment.start
        if dist.rank() == 0:
            log.info("resuming mid-segment: the data streams of the segment from iteration %d pass over %d "
                     "iterations of real images", self.segment.start, done)
        return self._reals(skip_batches=done * self.cfg.train.d_steps * self.cfg.train.accumulation)

    def _resumes_mid_segment(self, data: dict[str, Any], start: int, rollbacks: int) -> bool:
        segment = int(data.get("segment_start", start))
        if segment == start or "latent_states" not in data:
            return False
        # A rollback since (it reseeded from its target on), or settings that change what a stream reads per
        # step: the uninterrupted run's streams cannot be rebuilt, so a new segment starts here.
        same = (data.get("segment_rollbacks") == rollbacks and data.get("streams") == self.plan.streams
                and data.get("per_stream") == self.plan.per_stream and data.get("d_steps") == self.cfg.train.d_steps)
        if not same and dist.rank() == 0:
            log.warning("the checkpoint at iteration %d was taken mid-segment, but rollbacks or the batch settings "
                        "changed since: the data streams start a new segment there", start)
        return same

    def checkpoint_data(self, iteration: int, mid_segment: bool) -> dict[str, Any]:
        """What a checkpoint at `iteration` records of the streams. `mid_segment` (a checkpoint that does not
        reseed) gathers every stream's latent generator state: a collective, called on every rank."""
        data: dict[str, Any] = {"segment_start": self.segment.start if mid_segment else iteration,
                                "segment_rollbacks": self.segment.rollbacks, "streams": self.plan.streams,
                                "per_stream": self.plan.per_stream, "d_steps": self.cfg.train.d_steps}
        if mid_segment:
            rows = torch.stack([g.get_state() for g in self.generators]).to(self.device)
            everyone = dist.all_gather_rows(rows).cpu()  # stream order: ranks hold contiguous blocks
            data["latent_states"] = [row.clone() for row in everyone.unbind()]  # one tensor per stream
        return data

    def _seed(self, stream: int) -> int:
        return segment_seed(self.cfg.train.seed, stream, self.segment.start, self.segment.rollbacks)

    def _reals(self, skip_batches: int) -> Iterator:
        plan, seeds = self.plan, [self._seed(stream) for stream in self.plan.mine]
        if self.real_fn is None:
            from biggan.data.loader import stream_loader

            data = self.cfg.data
            return stream_loader(data.train_shards, plan.per_stream, list(plan.mine), plan.streams, seeds,
                                 plan.shuffle_buffer, data.loader_workers, data.on_damaged_shard,
                                 skip_batches=skip_batches)
        parts = [self.real_fn(self.cfg, plan.per_stream, stream, plan.streams, seed)
                 for stream, seed in zip(plan.mine, seeds)]
        for part in parts:  # a test's stream cannot pass over without reading: read and drop
            for _ in range(skip_batches):
                next(part)
        return parts[0] if len(parts) == 1 else _joined(parts)


def _joined(parts: list[Iterator]) -> Iterator:
    """One batch from each stream, joined in stream order."""
    while True:
        batches = [next(part) for part in parts]
        yield torch.cat([images for images, _ in batches]), torch.cat([labels for _, labels in batches])
