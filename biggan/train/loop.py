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

Recover instead of stop (`train.collapse.action=rollback`, biggan.train.recovery): the rule
firing sends every rank back to the newest checkpoint at or before the last healthy record, with
the next remedy applied, up to `max_rollbacks`; pruning never deletes that checkpoint.

Exact resume: the data stream and the latent RNG are restarted at every checkpoint from
seeds derived from (seed, rank, iteration, rollbacks so far). A run resumed from the checkpoint
at iteration k therefore sees exactly the batches and latents an uninterrupted run sees after k,
whatever the loader's internal state was (WebDataset pipelines cannot be snapshotted); a rollback
restarts them the same way at the checkpoint it goes back to, with its count in the seed.
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
from biggan.experiment import check_remedies
from biggan.models import Generator
from biggan.models.batchnorm import LocalReducer, set_bn_reducer
from biggan.models.spectral import singular_values
from biggan.runs import RunStore
from biggan.runs.tensorboard import EventWriter
from biggan.sampling.latents import sample_latents
from biggan.train import dist
from biggan.train.context import TrainContext
from biggan.train.monitor import (
    flatten_singular_values,
    frobenius_norms,
    layer_grad_norms,
    progress_line,
    top_singular_values,
)
from biggan.train.recovery import Health, effective_config, pick_checkpoint, roll_back
from biggan.train.state import TrainingState, broadcast_initial_weights, build_training_state, start_from_source
from biggan.train.step import TrainStep

HEARTBEAT_S = 60.0  # rank 0 refreshes status.json at least this often (`biggan runs` tells stale runs)
PER_LAYER = ("sv/", "fro/", "grad_norm/G/", "grad_norm/D/")  # per-layer record keys, left out of meta.json

log = logging.getLogger("biggan.train")


@dataclass
class LoopResult:
    iteration: int  # last iteration completed
    collapsed: bool  # stopped by the collapse rule
    reason: str  # why it stopped
    metrics: dict[str, Any] = field(default_factory=dict)  # last reported metrics
    rollbacks: int = 0  # rollbacks the run has made (this session and earlier ones)


def segment_seed(seed: int, rank: int, iteration: int, rollbacks: int = 0) -> int:
    """Seed of the data/latent streams for the segment starting at `iteration` on `rank`, after
    `rollbacks` rollbacks (0: the seeds every run had before rollbacks existed)."""
    return (seed * 1_000_003 + rank * 7_919 + iteration + rollbacks * 1_000_000_007) % (2**63 - 1)


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
        self.progress = 0.0  # fraction of training done: Appendix E's variance annealing follows it

    def __call__(self, batch: int, generator: torch.Generator):
        z = sample_latents(batch, self.dim_z, None, self.prior, generator, self.device, progress=self.progress)
        y = torch.randint(self.num_classes, (batch,), generator=generator, device=self.device)
        return z, y


def resume_state(store: RunStore, state: TrainingState, cfg: ExperimentConfig,
                 device: torch.device) -> tuple[int, Health]:
    """Load the newest intact checkpoint of the run into `state`; returns its iteration (0: none,
    after starting from `train.init_from`'s weights when the config names a source) and the
    run's health at that checkpoint.

    Rank 0 picks the checkpoint (skipping damaged ones, with a warning naming each) and every
    rank loads the one it picked, so ranks can never resume from different iterations."""
    found = pick_checkpoint(store, device)
    if found is None:
        if cfg.train.init_from is not None:  # a new run's first start only: a resume uses its own checkpoints
            start_from_source(state, cfg, store)
        broadcast_initial_weights(state)
        return 0, Health(last_healthy=0)
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
    check_remedies(cfg)
    store = RunStore(cfg.run_uri)
    # A run that rolled back before continues with what its rollbacks changed, and reseeds as they did.
    rollbacks = len(store.rollbacks())
    cfg = effective_config(cfg, store.rollbacks())
    tcfg = cfg.train
    device, rank, world = ctx.device, ctx.rank, ctx.world_size
    micro_batch = dist.micro_batch_size(tcfg.batch_size, world, tcfg.accumulation)

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
        seed = segment_seed(tcfg.seed, rank, iteration, rollbacks)
        state.latent_rng.manual_seed(seed)
        return real_batches_fn(cfg, micro_batch, rank, world, seed)

    if rank == 0 and tcfg.precision == "auto":
        log.info("train.precision=auto: %s on %s", state.precision, device.type)
    step = TrainStep(state.G, state.D, state.ema, state.opt_G, state.opt_D, start_segment(start), sampler,
                     state.latent_rng, tcfg.model_copy(update={"precision": state.precision}), micro_batch, device,
                     ada=state.ada, lecam=state.lecam)
    last_metrics: dict[str, Any] = {}
    tick_time, tick_iteration, beat = time.perf_counter(), start, time.monotonic()
    session_start = time.monotonic()  # train.wall_budget_s counts this session's training time
    checkpoints_saved = start // tcfg.checkpoint_every
    iteration, reason, collapsed = start, "finished", False
    while iteration < cfg.train.iterations:
        tcfg = cfg.train  # a rollback's remedy may change it
        iteration += 1
        sampler.progress = (iteration - 1) / tcfg.iterations
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
        record, verdict = _record(iteration, metrics, its_per_s, state, cfg, rollbacks)
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
            kind, why = ("collapsed", verdict.reason) if verdict.collapsed else ("stopped", dead.reason)
            reason = f"{'collapse' if kind == 'collapsed' else 'dead discriminator'} at iteration {iteration}: {why}"
            record["collapse_tripped"] = True
            ctx.report(record)
            back = None
            if tcfg.collapse.action == "rollback" and rollbacks < tcfg.collapse.max_rollbacks:
                signal = f"{'collapse' if kind == 'collapsed' else 'dead discriminator'}: {why}"
                back = roll_back(store, state, step, cfg, health, iteration, rollbacks + 1, signal, device, board)
                if back is None:
                    reason += "; no checkpoint was saved at or before the last healthy record to roll back to"
            if back is not None:
                rollbacks += 1
                reason = "finished"  # unless the run stops again: the collapse it left is in the rollback's record
                cfg, iteration, health = back.cfg, back.start, back.health
                checkpoints_saved = iteration // cfg.train.checkpoint_every
                tick_time, tick_iteration, beat = time.perf_counter(), iteration, time.monotonic()
                if rank == 0:
                    status("running", iteration)
                    store.write_spectra()
                _close(step.real_batches)
                step.real_batches = start_segment(iteration)
                continue
            collapsed = True
            if rank == 0:
                # Section 4: scores from the newest checkpoint saved at or before the last healthy record.
                before = [c for c in store.checkpoints() if c.iteration <= health.last_healthy]
                store.mark_for_evaluation(before[-1] if before else None, reason,
                                          onset=iteration if health.onset is None else health.onset,
                                          last_healthy=health.last_healthy)
                status(kind, iteration, reason)
                store.write_spectra(onset=health.onset)
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
        # train.wall_budget_s: stop at the first checkpoint past the budget, every rank at once.
        if is_ckpt and tcfg.wall_budget_s is not None and dist.all_ranks_any(
                time.monotonic() - session_start > tcfg.wall_budget_s, device):
            reason = f"wall budget of {tcfg.wall_budget_s:g} s reached at iteration {iteration}"
            break

    _close(step.real_batches)
    if board is not None:
        board.close()
    if rank == 0 and not collapsed:
        found = store.checkpoints()
        store.mark_for_evaluation(found[-1] if found else None, reason)
        status("finished", iteration, reason)
    return LoopResult(iteration=iteration, collapsed=collapsed, reason=reason, metrics=last_metrics,
                      rollbacks=rollbacks)


def _record(iteration: int, metrics: dict[str, float], its_per_s: float, state: TrainingState,
            cfg: ExperimentConfig, rollbacks: int = 0):
    """The stats record of a log tick and the collapse rule's verdict on it."""
    g_svs, d_svs = singular_values(state.G), singular_values(state.D)
    record = {"iteration": iteration, **metrics,
              "iterations_per_s": its_per_s,
              # Images D sees per second: real images of every D step, all workers.
              "images_per_s": its_per_s * cfg.train.batch_size * cfg.train.d_steps,
              **flatten_singular_values("G", g_svs), **flatten_singular_values("D", d_svs),
              # Appendix F: each layer's Frobenius norm and gradient norm (the gradients of the
              # last D step and of the G step are still on the weights here).
              **frobenius_norms(state.G, "G"), **frobenius_norms(state.D, "D"),
              **_floats(layer_grad_norms(state.G, "G")), **_floats(layer_grad_norms(state.D, "D"))}
    if rollbacks:
        record["collapse/rollbacks"] = rollbacks
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
    store.save_checkpoint(blob, {k: v for k, v in record.items() if not k.startswith(PER_LAYER)})
    # The checkpoint a collapse would go back to (and Section 4 would score) outlives the pruning.
    target = store.newest_at_or_before(health.last_healthy)
    store.prune_checkpoints(tcfg.keep_checkpoints, protect=(target.name,) if target is not None else ())
    store.write_spectra(onset=health.onset)
    if sheet:
        save_progress_samples(state.G_ema, cfg, store.sample_sheet(iteration), state.G.linear.weight.device)
        board.log_sheet(iteration, store.sample_sheet(iteration))


def _floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Device scalars to floats in one transfer."""
    if not values:
        return {}
    return dict(zip(values, torch.stack(list(values.values())).tolist()))


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
