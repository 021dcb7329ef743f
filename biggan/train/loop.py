"""The pure-PyTorch training loop (no Ray import): build, resume, step, log, checkpoint, stop.

Maintenance happens once per tick, counted in iterations (G steps), as in edm/stylegan2-ada:
every `log_every` a stats record, every `checkpoint_every` a checkpoint (and every
`sample_every` checkpoints a sample sheet), and the collapse rule on every record. Rank 0
writes everything into the run store and logs the progress lines (`biggan.train`); every rank
reports. What a tick does (the record, the checkpoint save, sample sheets) is biggan.train.maintenance.

Collapse (Section 4: stop just after, score "the checkpoint saved just before"): the loop keeps
the last healthy record (one that tripped neither rule) and the onset (the first tripping
record since), checkpointed with the weights so a resumed run keeps them. A checkpoint tick whose
record tripped still saves (the streak may end), but that checkpoint is after the onset: when the
rule stops the run, evaluate.json names the newest checkpoint at or before the last healthy
record, with both iterations, and the run store never hands evaluation anything later.

Recover instead of stop (`train.collapse.action=rollback`, biggan.train.recovery): the rule
firing sends every rank back to the newest checkpoint at or before the last healthy record, with
the next remedy applied, up to `max_rollbacks`; pruning never deletes that checkpoint.

Exact resume: the data streams (real images and latents, biggan.train.streams) are restarted at
every checkpoint from seeds derived from (seed, stream, iteration, rollbacks so far). A run resumed
from the checkpoint at iteration k therefore sees exactly the batches and latents an uninterrupted
run sees after k, whatever the loader's internal state was (WebDataset pipelines cannot be
snapshotted); a rollback restarts them the same way at the checkpoint it goes back to, with its
count in the seed. The global batch is read from a fixed number of streams shared out among the
workers, so it does not depend on how many there are: an elastic run (cluster.num_workers MIN-MAX)
resumed at another size trains on the same data (biggan.train.elastic: resize events, and the
checkpoint at the next step boundary after a preemption notice, which does not restart the streams).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.data.verify import check_shards
from biggan.experiment import check_remedies
from biggan.runs import RunStore
from biggan.train import dist
from biggan.train.context import TrainContext
from biggan.train.elastic import PreemptionWatch, note_world, record_preemption, workers_text
from biggan.train.maintenance import average_over_ranks, checkpoint_tick, close_stream, tick_record
from biggan.train.monitor import progress_line
from biggan.train.recovery import Health, effective_config, pick_checkpoint, roll_back
from biggan.train.state import TrainingState, broadcast_initial_weights, build_training_state, start_from_source
from biggan.train.step import TrainStep
from biggan.train.streams import (  # noqa: F401 - LatentSampler and segment_seed: their home before streams.py
    DataStreams,
    LatentSampler,
    RealStreamFn,
    StreamLatents,
    StreamPlan,
    segment_seed,
)

HEARTBEAT_S = 60.0  # rank 0 refreshes status.json at least this often (`biggan runs` tells stale runs)

log = logging.getLogger("biggan.train")


@dataclass
class LoopResult:
    iteration: int  # last iteration completed
    collapsed: bool  # stopped by the collapse rule
    reason: str  # why it stopped
    metrics: dict[str, Any] = field(default_factory=dict)  # last reported metrics
    rollbacks: int = 0  # rollbacks the run has made (this session and earlier ones)


def resume_state(store: RunStore, state: TrainingState, cfg: ExperimentConfig,
                 device: torch.device) -> tuple[int, Health, dict[str, Any]]:
    """Load the newest intact checkpoint of the run into `state`; returns its iteration (0: none,
    after starting from `train.init_from`'s weights when the config names a source), the
    run's health at that checkpoint and what it recorded of the data streams ({} for none).

    Rank 0 picks the checkpoint (skipping damaged ones, with a warning naming each) and every
    rank loads the one it picked, so ranks can never resume from different iterations."""
    found = pick_checkpoint(store, device)
    if found is None:
        if cfg.train.init_from is not None:  # a new run's first start only: a resume uses its own checkpoints
            start_from_source(state, cfg, store)
        broadcast_initial_weights(state)
        return 0, Health(last_healthy=0), {}
    info, blob = found
    start = state.load_state_dict(blob, cfg)
    if dist.rank() == 0:
        log.info("resumed %s from %s at iteration %d", store.uri, info.uri, start)
    return start, Health.resumed(blob, start), dict(blob.get("data") or {})


def train(cfg: ExperimentConfig, ctx: TrainContext, real_batches_fn: RealStreamFn | None = None) -> LoopResult:
    """Train `cfg` on this rank until `train.iterations`, a collapse, or a failure.

    `real_batches_fn(cfg, batch, stream, streams, seed)` builds data stream `stream` of `streams`
    (infinite batches of `batch` real images); tests may pass their own, the default (None) is the
    shard loader.
    """
    check_remedies(cfg)
    store = RunStore(cfg.run_uri)
    # A run that rolled back before continues with what its rollbacks changed, and reseeds as they did.
    rollbacks = len(store.rollbacks())
    cfg = effective_config(cfg, store.rollbacks())
    tcfg = cfg.train
    device, rank, world = ctx.device, ctx.rank, ctx.world_size
    # Recomputed at every start: an elastic run may be back at another size (same global batch).
    micro_batch = dist.micro_batch_size(tcfg.batch_size, world, tcfg.accumulation)
    plan = StreamPlan.of(cfg, rank, world)

    state = build_training_state(cfg, device, world)
    start, health, resumed_data = resume_state(store, state, cfg, device)
    # Shards left out under data.on_damaged_shard=skip are counted in every record and the status.
    skipped = ({"skipped_shards": len(check_shards(cfg.data.train_shards))}
               if cfg.data.on_damaged_shard == "skip" else {})

    def status(state_: str, iteration: int, reason: str = "") -> None:
        store.write_status(state_, iteration, tcfg.iterations, reason, **skipped)

    if rank == 0:
        store.stats.keep(lambda record: record.get("iteration", 0) <= start)  # a resumed run re-logs the rest
        status("running", start)
    board = store.tensorboard_train(resumed_at=start) if rank == 0 else None  # TensorBoard: rank 0 writes
    if rank == 0:
        note_world(store, board, cfg, resumed_data, start, world, micro_batch)
    workers = workers_text(world, cfg)  # "6 of 8 workers" in an elastic run's progress lines

    # One latent generator per data stream of this worker; the first is TrainStep's (D's dropout draws from it).
    generators = [state.latent_rng] + [torch.Generator(device=device) for _ in plan.mine[1:]]
    sampler = StreamLatents(state.G.dim_z, cfg.model.num_classes, cfg.model.latent, device, generators,
                            plan.per_stream)
    streams = DataStreams(cfg, plan, generators, real_batches_fn, device)
    preemption = PreemptionWatch(ctx)

    if rank == 0 and tcfg.precision == "auto":
        log.info("train.precision=auto: %s on %s", state.precision, device.type)
    step = TrainStep(state.G, state.D, state.ema, state.opt_G, state.opt_D,
                     streams.resume(resumed_data, start, rollbacks), sampler,
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
        notice = preemption.due(device)  # every rank, every step: a node about to be reclaimed?
        if notice is not None and not is_ckpt:
            # Checkpoint now without reseeding the streams: a resume from here reads what an uninterrupted run reads.
            data = streams.checkpoint_data(iteration, mid_segment=True)  # collective
            if rank == 0:
                checkpoint_tick(store, state, cfg, iteration, world, micro_batch,
                                {"iteration": iteration, "preemption": notice}, health, sheet=False, board=board,
                                data=data)
                record_preemption(store, iteration, notice, world)
                status("running", iteration)
        if not (is_log or is_ckpt):
            continue

        metrics = average_over_ranks(metrics, device)
        now = time.perf_counter()
        its_per_s = (iteration - tick_iteration) / max(now - tick_time, 1e-9)
        tick_time, tick_iteration = now, iteration
        record, verdict = tick_record(iteration, metrics, its_per_s, state, cfg, rollbacks)
        record.update({f"data/{k}": v for k, v in skipped.items()})
        record.update(workers=world, max_workers=max(cfg.cluster.max_workers, world))
        if rank == 0:
            store.stats.append(record)
            board.log_stats(record)
            log.info("%s", progress_line(iteration, tcfg.iterations, metrics, record["images_per_s"],
                                         1.0 / max(its_per_s, 1e-9), workers=workers))
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
                close_stream(step.real_batches)
                step.real_batches = streams.restart(iteration, rollbacks)
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
                checkpoint_tick(store, state, cfg, iteration, world, micro_batch, record, health,
                                sheet=checkpoints_saved % tcfg.sample_every == 0, board=board,
                                data=streams.checkpoint_data(iteration, mid_segment=False))
                status("running", iteration)
                beat = time.monotonic()
            # Restart the streams from (seed, stream, iteration): resume from here is exact.
            close_stream(step.real_batches)
            step.real_batches = streams.restart(iteration, rollbacks)
        ctx.report(record)
        # train.wall_budget_s: stop at the first checkpoint past the budget, every rank at once.
        if is_ckpt and tcfg.wall_budget_s is not None and dist.all_ranks_any(
                time.monotonic() - session_start > tcfg.wall_budget_s, device):
            reason = f"wall budget of {tcfg.wall_budget_s:g} s reached at iteration {iteration}"
            break

    close_stream(step.real_batches)
    if board is not None:
        board.close()
    if rank == 0 and not collapsed:
        found = store.checkpoints()
        store.mark_for_evaluation(found[-1] if found else None, reason)
        status("finished", iteration, reason)
    return LoopResult(iteration=iteration, collapsed=collapsed, reason=reason, metrics=last_metrics,
                      rollbacks=rollbacks)

