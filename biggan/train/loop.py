"""The pure-PyTorch training loop (no Ray import): build, resume, step, log, checkpoint, stop.

Maintenance happens once per tick, counted in iterations (G steps), as in edm/stylegan2-ada:
every `log_every` a stats record, every `checkpoint_every` a checkpoint (and every
`sample_every` checkpoints a sample sheet), and the collapse rule on every record. Rank 0
writes everything into the run store and logs the progress lines (`biggan.train`); every rank
reports.

Collapse (Section 4: stop just after, score "the checkpoint saved just before"): the loop keeps
the last healthy record (one that tripped neither rule) and the onset (the first tripping
record since), checkpointed with the weights so a resumed run keeps them. A checkpoint tick whose
record tripped still saves (the streak may end), but that checkpoint is after the onset: when the
rule stops the run, evaluate.json names the newest checkpoint at or before the last healthy
record, with both iterations, and the run store never hands evaluation anything later.

Exact resume: the data stream and the latent RNG are restarted at every checkpoint from
seeds derived from (seed, rank, iteration). A run resumed from the checkpoint at iteration k
therefore sees exactly the batches and latents an uninterrupted run sees after k, whatever
the loader's internal state was (WebDataset pipelines cannot be snapshotted).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.data.verify import check_shards
from biggan.models import Generator
from biggan.models.batchnorm import LocalReducer, set_bn_reducer
from biggan.models.spectral import singular_values
from biggan.runs import RunStore
from biggan.runs.tensorboard import EventWriter
from biggan.sampling.latents import sample_latents
from biggan.train import dist
from biggan.train.context import TrainContext
from biggan.train.monitor import flatten_singular_values, progress_line, top_singular_values
from biggan.train.state import TrainingState, broadcast_initial_weights, build_training_state, start_from_source
from biggan.train.step import TrainStep

HEARTBEAT_S = 60.0  # rank 0 refreshes status.json at least this often (`biggan runs` tells stale runs)

log = logging.getLogger("biggan.train")


@dataclass
class LoopResult:
    iteration: int  # last iteration completed
    collapsed: bool  # stopped by the collapse rule
    reason: str  # why it stopped
    metrics: dict[str, Any] = field(default_factory=dict)  # last reported metrics


def segment_seed(seed: int, rank: int, iteration: int) -> int:
    """Seed of the data/latent streams for the segment starting at `iteration` on `rank`."""
    return (seed * 1_000_003 + rank * 7_919 + iteration) % (2**63 - 1)


def default_real_batches(cfg: ExperimentConfig, micro_batch: int, rank: int, world: int,
                         seed: int) -> Iterator:
    """The shard loader's infinite stream for this rank (each rank reads a disjoint slice)."""
    from biggan.data.loader import train_loader

    return train_loader(cfg.data.train_shards, batch_size=micro_batch, rank=rank, world_size=world,
                        seed=seed, shuffle_buffer=cfg.data.shuffle_buffer, num_workers=cfg.data.loader_workers,
                        policy=cfg.data.on_damaged_shard)


class LatentSampler:
    """(z, y) for fakes: z from the model's prior (Appendix E), y uniform over classes."""

    def __init__(self, dim_z: int, num_classes: int, prior: str, device: torch.device):
        self.dim_z, self.num_classes, self.prior, self.device = dim_z, num_classes, prior, device

    def __call__(self, batch: int, generator: torch.Generator):
        z = sample_latents(batch, self.dim_z, None, self.prior, generator, self.device)
        y = torch.randint(self.num_classes, (batch,), generator=generator, device=self.device)
        return z, y


@dataclass
class Health:
    """Where the run stands against the collapse and dead-D rules (saved in every checkpoint)."""

    last_healthy: int  # iteration of the last record that tripped neither rule (the start if none yet)
    onset: int | None = None  # iteration of the first tripping record since then; None while healthy

    def state_dict(self) -> dict[str, Any]:
        return {"last_healthy": self.last_healthy, "onset": self.onset}

    @classmethod
    def resumed(cls, blob: dict[str, Any], start: int) -> Health:
        """From a checkpoint (one written before this was saved: healthy at its iteration)."""
        saved = blob.get("health") or {}
        return cls(int(saved.get("last_healthy", start)), saved.get("onset"))


def resume_state(store: RunStore, state: TrainingState, cfg: ExperimentConfig,
                 device: torch.device) -> tuple[int, Health]:
    """Load the newest intact checkpoint of the run into `state`; returns its iteration (0: none,
    after starting from `train.init_from`'s weights when the config names a source) and the
    run's health at that checkpoint.

    Rank 0 picks the checkpoint (skipping damaged ones, with a warning naming each) and every
    rank loads the one it picked, so ranks can never resume from different iterations."""
    chosen = -1
    found = None
    if dist.rank() == 0:
        found = store.load_newest_intact(map_location=device)
        chosen = found[0].iteration if found is not None else -1
    chosen = dist.broadcast_int(chosen, device)
    if chosen < 0:
        if cfg.train.init_from is not None:  # a new run's first start only: a resume uses its own checkpoints
            start_from_source(state, cfg, store)
        broadcast_initial_weights(state)
        return 0, Health(last_healthy=0)
    if found is None:
        info = [c for c in store.checkpoints() if c.iteration == chosen][0]
        found = info, store.load_state(info, map_location=device)
    info, blob = found
    start = state.load_state_dict(blob, cfg)
    _warn_if_world_changed(blob["data"], dist.world_size())
    if dist.rank() == 0:
        log.info("resumed %s from %s at iteration %d", store.uri, info.uri, start)
    return start, Health.resumed(blob, start)


def train(cfg: ExperimentConfig, ctx: TrainContext, real_batches_fn=default_real_batches) -> LoopResult:
    """Train `cfg` on this rank until `train.iterations`, a collapse, or a failure.

    `real_batches_fn(cfg, micro_batch, rank, world, seed)` builds the real-image stream; tests
    may pass their own, the default is the shard loader.
    """
    tcfg = cfg.train
    device, rank, world = ctx.device, ctx.rank, ctx.world_size
    micro_batch = dist.micro_batch_size(tcfg.batch_size, world, tcfg.accumulation)
    store = RunStore(cfg.run_uri)

    state = build_training_state(cfg, device, world)
    start, health = resume_state(store, state, cfg, device)
    # Shards left out under data.on_damaged_shard=skip are counted in every record and the status.
    skipped = ({"skipped_shards": len(check_shards(cfg.data.train_shards))}
               if cfg.data.on_damaged_shard == "skip" else {})

    def status(state_: str, iteration: int, reason: str = "") -> None:
        store.write_status(state_, iteration, tcfg.iterations, reason, **skipped)

    if rank == 0:
        store.stats.keep(lambda record: record.get("iteration", 0) <= start)  # a resumed run re-logs the rest
        status("running", start)
    board = store.tensorboard_train(resumed_at=start) if rank == 0 else None  # TensorBoard: rank 0 writes

    sampler = LatentSampler(state.G.dim_z, cfg.model.num_classes, cfg.model.latent, device)

    def start_segment(iteration: int) -> Iterator:
        seed = segment_seed(tcfg.seed, rank, iteration)
        state.latent_rng.manual_seed(seed)
        return real_batches_fn(cfg, micro_batch, rank, world, seed)

    if rank == 0 and tcfg.precision == "auto":
        log.info("train.precision=auto: %s on %s", state.precision, device.type)
    step = TrainStep(state.G, state.D, state.ema, state.opt_G, state.opt_D, start_segment(start), sampler,
                     state.latent_rng, tcfg.model_copy(update={"precision": state.precision}), micro_batch, device)
    last_metrics: dict[str, Any] = {}
    tick_time, tick_iteration, beat = time.perf_counter(), start, time.monotonic()
    checkpoints_saved = start // tcfg.checkpoint_every
    iteration, reason, collapsed = start, "finished", False
    while iteration < tcfg.iterations:
        iteration += 1
        is_log = iteration % tcfg.log_every == 0 or iteration == tcfg.iterations
        is_ckpt = iteration % tcfg.checkpoint_every == 0 or iteration == tcfg.iterations
        if rank == 0 and time.monotonic() - beat > HEARTBEAT_S:
            status("running", iteration)
            beat = time.monotonic()
        metrics = step.step(iteration, tick=is_log or is_ckpt)
        if not (is_log or is_ckpt):
            continue

        metrics = _average_over_ranks(metrics, device)
        now = time.perf_counter()
        its_per_s = (iteration - tick_iteration) / max(now - tick_time, 1e-9)
        tick_time, tick_iteration = now, iteration
        record, verdict = _record(iteration, metrics, its_per_s, state, cfg)
        record.update({f"data/{k}": v for k, v in skipped.items()})
        if rank == 0:
            store.stats.append(record)
            board.log_stats(record)
            log.info("%s", progress_line(iteration, tcfg.iterations, metrics, record["images_per_s"],
                                         1.0 / max(its_per_s, 1e-9)))
        last_metrics = record

        dead = state.dead.update(metrics)
        tripped = verdict.tripped or dead.tripped
        if tripped and health.onset is None:
            health.onset = iteration
        # One decision for all ranks (they see the same averaged metrics; the all-reduce makes it certain).
        if dist.all_ranks_any(verdict.collapsed or dead.collapsed, device):
            collapsed = True
            kind, why = ("collapsed", verdict.reason) if verdict.collapsed else ("stopped", dead.reason)
            reason = f"{'collapse' if kind == 'collapsed' else 'dead discriminator'} at iteration {iteration}: {why}"
            record["collapse_tripped"] = True
            ctx.report(record)
            if rank == 0:
                # Section 4: scores from the newest checkpoint saved at or before the last healthy record.
                before = [c for c in store.checkpoints() if c.iteration <= health.last_healthy]
                store.mark_for_evaluation(before[-1] if before else None, reason,
                                          onset=iteration if health.onset is None else health.onset,
                                          last_healthy=health.last_healthy)
                status(kind, iteration, reason)
                log.warning("stopping: %s (onset at iteration %s, last healthy record at iteration %d; %s)",
                            reason, health.onset, health.last_healthy,
                            f"{before[-1].name} is the one to evaluate" if before
                            else "no checkpoint was saved before it")
            break
        if not tripped:
            health.last_healthy, health.onset = iteration, None
        if is_ckpt:
            checkpoints_saved += 1
            if rank == 0:
                _save(store, state, cfg, iteration, world, micro_batch, record, health,
                      sheet=checkpoints_saved % tcfg.sample_every == 0, board=board)
                status("running", iteration)
                beat = time.monotonic()
            # Restart the streams from (seed, rank, iteration): resume from here is exact.
            _close(step.real_batches)
            step.real_batches = start_segment(iteration)
        ctx.report(record)

    _close(step.real_batches)
    if board is not None:
        board.close()
    if rank == 0 and not collapsed:
        found = store.checkpoints()
        store.mark_for_evaluation(found[-1] if found else None, reason)
        status("finished", iteration, reason)
    return LoopResult(iteration=iteration, collapsed=collapsed, reason=reason, metrics=last_metrics)


def _record(iteration: int, metrics: dict[str, float], its_per_s: float, state: TrainingState,
            cfg: ExperimentConfig):
    """The stats record of a log tick and the collapse rule's verdict on it."""
    g_svs, d_svs = singular_values(state.G), singular_values(state.D)
    record = {"iteration": iteration, **metrics,
              "iterations_per_s": its_per_s,
              # Images D sees per second: real images of every D step, all workers.
              "images_per_s": its_per_s * cfg.train.batch_size * cfg.train.d_steps,
              **flatten_singular_values("G", g_svs), **flatten_singular_values("D", d_svs)}
    top = {f"G/{k}": v for k, v in top_singular_values(g_svs).items()}
    top.update({f"D/{k}": v for k, v in top_singular_values(d_svs).items()})
    verdict = state.detector.update(iteration, metrics["loss/D"], top, [metrics["loss/G"]])
    record["collapse_tripped"] = verdict.tripped
    return record, verdict


def _save(store: RunStore, state: TrainingState, cfg: ExperimentConfig, iteration: int, world: int,
          micro_batch: int, record: dict[str, Any], health: Health, sheet: bool, board: EventWriter) -> None:
    """Rank 0's maintenance at a checkpoint tick: save, prune, status, sample sheet."""
    tcfg = cfg.train
    blob = state.state_dict(cfg, iteration, world, micro_batch)
    blob["health"] = health.state_dict()  # a resumed run must not take a tripping checkpoint for a healthy one
    store.save_checkpoint(blob, {k: v for k, v in record.items() if not k.startswith("sv/")})
    store.prune_checkpoints(tcfg.keep_checkpoints)
    if sheet:
        save_progress_samples(state.G_ema, cfg, store.sample_sheet(iteration), state.G.linear.weight.device)
        board.log_sheet(iteration, store.sample_sheet(iteration))


def save_progress_samples(G_ema: Generator, cfg: ExperimentConfig, target, device: torch.device) -> None:
    """A sample sheet from a copy of G_ema with standing statistics (Appendix C.1), fixed z."""
    from biggan.sampling.sheets import save_sample_sheet
    from biggan.sampling.standing import standing_stats_

    sampler_G = copy.deepcopy(G_ema)
    set_bn_reducer(sampler_G, LocalReducer())
    standing_stats_(sampler_G, cfg.model.num_classes, cfg.train.standing_stats_batches,
                    min(cfg.train.batch_size, 64), None, device, prior=cfg.model.latent, seed=cfg.train.seed)
    # Fixed classes and z (same seed every time) so consecutive sheets are comparable.
    classes = list(range(min(cfg.model.num_classes, 10)))
    save_sample_sheet(sampler_G, target, classes, 8, None, cfg.train.seed, prior=cfg.model.latent)


def _close(stream: Iterator) -> None:
    """Stop a real-image stream's loader workers now (test streams may be plain generators)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _warn_if_world_changed(data: dict[str, Any], world: int) -> None:
    if int(data.get("world_size", world)) != world and dist.rank() == 0:
        # Still resumable, but the per-rank streams differ: say so instead of hiding it.
        log.warning("resuming with %d workers from a checkpoint written with %s: the data order will differ "
                    "from an uninterrupted run", world, data.get("world_size"))


def _average_over_ranks(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of each scalar over ranks, so every rank sees (and judges collapse on) the same values."""
    if not dist.is_distributed():
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    values /= dist.world_size()
    return dict(zip(keys, values.tolist()))

