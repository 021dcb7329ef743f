"""The pure-PyTorch training loop (no Ray import): build, resume, step, log, checkpoint, stop.

Maintenance happens once per tick, counted in iterations (G steps), as in edm/stylegan2-ada:
every `log_every` a stats record, every `checkpoint_every` a checkpoint (and every
`sample_every` checkpoints a sample sheet), and the collapse rule on every record.

Exact resume: the data stream and the latent RNG are restarted at every checkpoint from
seeds derived from (seed, rank, iteration). A run resumed from the checkpoint at iteration k
therefore sees exactly the batches and latents an uninterrupted run sees after k, whatever
the loader's internal state was (WebDataset pipelines cannot be snapshotted). The checkpoint
still records the RNG states and data position, so this is visible and checked on load.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from biggan.config import ExperimentConfig
from biggan.files import atomic_write_text
from biggan.models import Generator, build_models
from biggan.models.batchnorm import CrossReplicaReducer, LocalReducer, set_bn_reducer
from biggan.models.spectral import singular_values
from biggan.train import checkpoint as ckpt
from biggan.train import dist
from biggan.train.context import TrainContext
from biggan.train.ema import EMA
from biggan.train.monitor import (
    CollapseDetector,
    StatsWriter,
    flatten_singular_values,
    progress_line,
    top_singular_values,
    truncate_stats,
)
from biggan.train.step import TrainStep

STATS_FILE = "stats.jsonl"
OPTIONS_FILE = "options.json"
SAMPLES_DIR = "samples"


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

    return train_loader(Path(cfg.data.train_shards), batch_size=micro_batch, rank=rank, world_size=world,
                        seed=seed, shuffle_buffer=cfg.data.shuffle_buffer, num_workers=cfg.data.loader_workers)


class LatentSampler:
    """(z, y) for fakes: z from the model's prior (Appendix E), y uniform over classes."""

    def __init__(self, dim_z: int, num_classes: int, prior: str, device: torch.device):
        self.dim_z, self.num_classes, self.prior, self.device = dim_z, num_classes, prior, device

    def __call__(self, batch: int, generator: torch.Generator):
        from biggan.eval.sampling import sample_latents

        z = sample_latents(batch, self.dim_z, None, self.prior, generator, self.device)
        y = torch.randint(self.num_classes, (batch,), generator=generator, device=self.device)
        return z, y


def train(cfg: ExperimentConfig, ctx: TrainContext, real_batches_fn=default_real_batches) -> LoopResult:
    """Train `cfg` on this rank until `train.iterations`, a collapse, or a failure.

    `real_batches_fn(cfg, micro_batch, rank, world, seed)` builds the real-image stream; tests
    may pass their own, the default is the shard loader.
    """
    tcfg = cfg.train
    device, rank, world = ctx.device, ctx.rank, ctx.world_size
    micro_batch = dist.micro_batch_size(tcfg.batch_size, world, tcfg.accumulation)
    run_dir = cfg.run_dir

    # Same initialisation everywhere; broadcast below makes it certain.
    torch.manual_seed(tcfg.seed)
    G, D = build_models(cfg.model)
    G_ema = Generator(cfg.model)  # local BN reducer: sampling on rank 0 alone must not all-reduce
    G_ema.load_state_dict(G.state_dict())
    G_ema.eval()
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    for net in (G, D, G_ema):
        net.to(device=device, memory_format=memory_format)
        net.train()
    G_ema.eval()
    if world > 1:
        # Cross-replica BN (Section 3 / TPU pods): G's batch stats are all-reduced.
        set_bn_reducer(G, CrossReplicaReducer())
    opt_G = torch.optim.Adam(G.parameters(), lr=tcfg.g_lr, betas=tcfg.betas, eps=tcfg.adam_eps, foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), lr=tcfg.d_lr, betas=tcfg.betas, eps=tcfg.adam_eps, foreach=True)
    ema = EMA(G, G_ema, tcfg.ema_decay, tcfg.ema_start)
    detector = CollapseDetector(tcfg.collapse)

    start = 0
    resume_dir = ctx.latest_checkpoint()
    if resume_dir is not None:
        state = ckpt.load_state(resume_dir, map_location=device)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        if "monitor" in state:
            detector.load_state_dict(state["monitor"])
        start = int(state["iteration"])
        _check_data_position(state["data"], cfg, world)
    else:
        dist.broadcast_module_(G)
        dist.broadcast_module_(D)
        dist.broadcast_module_(G_ema)

    stats = StatsWriter(run_dir / STATS_FILE) if rank == 0 else None
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / OPTIONS_FILE, json.dumps(cfg.model_dump(mode="json"), indent=2))
        truncate_stats(run_dir / STATS_FILE, start)  # a resumed run re-logs what came after
        if resume_dir is not None:
            print(f"[rank 0] resumed from {resume_dir} at iteration {start}", flush=True)

    dim_z = G.dim_z
    sampler = LatentSampler(dim_z, cfg.model.num_classes, cfg.model.latent, device)
    latent_rng = torch.Generator(device=device)

    def start_segment(iteration: int) -> Iterator:
        seed = segment_seed(tcfg.seed, rank, iteration)
        latent_rng.manual_seed(seed)
        return real_batches_fn(cfg, micro_batch, rank, world, seed)

    step = TrainStep(G, D, ema, opt_G, opt_D, start_segment(start), sampler, latent_rng, tcfg,
                     micro_batch, device)

    last_metrics: dict[str, Any] = {}
    healthy_iteration = start  # end of the last logged interval that did not trip the rule
    tick_time, tick_iteration = time.perf_counter(), start
    checkpoints_saved = start // tcfg.checkpoint_every
    iteration = start
    reason = "finished"
    collapsed = False
    while iteration < tcfg.iterations:
        iteration += 1
        is_log = iteration % tcfg.log_every == 0 or iteration == tcfg.iterations
        is_ckpt = iteration % tcfg.checkpoint_every == 0 or iteration == tcfg.iterations
        metrics = step.step(iteration, tick=is_log or is_ckpt)
        if not (is_log or is_ckpt):
            continue

        metrics = _average_over_ranks(metrics, device)
        now = time.perf_counter()
        its_per_s = (iteration - tick_iteration) / max(now - tick_time, 1e-9)
        tick_time, tick_iteration = now, iteration
        g_svs, d_svs = singular_values(G), singular_values(D)
        record = {"iteration": iteration, **metrics,
                  "iterations_per_s": its_per_s,
                  # Images D sees per second: real images of every D step, all workers.
                  "images_per_s": its_per_s * tcfg.batch_size * tcfg.d_steps,
                  **flatten_singular_values("G", g_svs), **flatten_singular_values("D", d_svs)}
        top = {f"G/{k}": v for k, v in top_singular_values(g_svs).items()}
        top.update({f"D/{k}": v for k, v in top_singular_values(d_svs).items()})
        verdict = detector.update(iteration, metrics["loss/D"], top, [metrics["loss/G"]])
        record["collapse_tripped"] = verdict.tripped
        if rank == 0:
            stats.write(record)
            print(progress_line(iteration, tcfg.iterations, metrics, record["images_per_s"],
                                1.0 / max(its_per_s, 1e-9)), flush=True)
        last_metrics = record

        if verdict.collapsed:
            collapsed, reason = True, f"collapse at iteration {iteration}: {verdict.reason}"
            # The last record before the tripping streak began was healthy: evaluate the newest
            # checkpoint saved at or before it (Section 4: scores from checkpoints just before).
            before = healthy_iteration
            ctx.report(record, None)
            if rank == 0:
                _mark_before_collapse(run_dir, before, reason)
                print(f"[rank 0] stopping: {reason}", flush=True)
            break
        if not verdict.tripped:
            healthy_iteration = iteration

        if not is_ckpt:
            ctx.report(record, None)
            continue
        scratch = None
        if rank == 0:
            scratch = _write_scratch_checkpoint(run_dir, {
                "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "iteration": iteration,
                "rng": {"torch": torch.get_rng_state(), "latent": latent_rng.get_state()},
                "data": {"segment_start": iteration, "seed": tcfg.seed, "world_size": world,
                         "micro_batch": micro_batch, "images_seen": iteration * tcfg.batch_size * tcfg.d_steps},
                "config": cfg.model_dump(mode="json"), "monitor": detector.state_dict(),
            }, _scalar_metrics(record))
        ctx.report(record, scratch)
        if rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
            ckpt.prune_checkpoints(run_dir, tcfg.keep_checkpoints, tcfg.best_metric, tcfg.best_mode,
                                   protect=_protected(run_dir))
        checkpoints_saved += 1
        if rank == 0 and checkpoints_saved % tcfg.sample_every == 0:
            save_progress_samples(G_ema, cfg, run_dir / SAMPLES_DIR / f"iter_{iteration:08d}.png", device)
        # Restart the streams from (seed, rank, iteration): resume from here is exact.
        _close(step.real_batches)
        step.real_batches = start_segment(iteration)

    _close(step.real_batches)
    if rank == 0 and not collapsed:
        found = ckpt.list_checkpoints(run_dir)
        ckpt.mark_for_evaluation(run_dir, found[-1].path if found else None, reason)
    return LoopResult(iteration=iteration, collapsed=collapsed, reason=reason, metrics=last_metrics)


def save_progress_samples(G_ema: Generator, cfg: ExperimentConfig, path: Path, device: torch.device) -> None:
    """A sample sheet from a copy of G_ema with standing statistics (Appendix C.1), fixed z."""
    from biggan.eval.sampling import save_sample_sheet, standing_stats_

    sampler_G = copy.deepcopy(G_ema)
    set_bn_reducer(sampler_G, LocalReducer())
    standing_stats_(sampler_G, cfg.model.num_classes, cfg.train.standing_stats_batches,
                    min(cfg.train.batch_size, 64), None, device, prior=cfg.model.latent, seed=cfg.train.seed)
    # Fixed classes and z (same seed every time) so consecutive sheets are comparable.
    classes = list(range(min(cfg.model.num_classes, 10)))
    save_sample_sheet(sampler_G, path, classes, 8, None, cfg.train.seed, prior=cfg.model.latent)


def _write_scratch_checkpoint(run_dir: Path, state: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """state.pt + meta.json in a hidden folder of the run dir (same filesystem: atomic moves)."""
    scratch = Path(tempfile.mkdtemp(prefix=".pending-checkpoint-", dir=run_dir))
    ckpt.write_checkpoint_files(scratch, state, metrics)
    return scratch


def _mark_before_collapse(run_dir: Path, before: int, reason: str) -> None:
    candidates = [info for info in ckpt.list_checkpoints(run_dir) if info.iteration <= before]
    ckpt.mark_for_evaluation(run_dir, candidates[-1].path if candidates else None, reason)


def _protected(run_dir: Path) -> tuple[Path, ...]:
    marker = run_dir / ckpt.EVALUATE_FILE
    if marker.is_file():
        name = json.loads(marker.read_text()).get("checkpoint")
        if name:
            return (run_dir / name,)
    return ()


def _close(stream: Iterator) -> None:
    """Stop a real-image stream's loader workers now (test streams may be plain generators)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _check_data_position(data: dict[str, Any], cfg: ExperimentConfig, world: int) -> None:
    if int(data.get("world_size", world)) != world:
        # Still resumable, but the per-rank streams differ: say so instead of hiding it.
        print(f"[warning] resuming with {world} workers from a checkpoint written with "
              f"{data.get('world_size')}: the data order will differ from an uninterrupted run", flush=True)


def _average_over_ranks(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of each scalar over ranks, so every rank sees (and judges collapse on) the same values."""
    if not dist.is_distributed():
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    values /= dist.world_size()
    return dict(zip(keys, values.tolist()))


def _scalar_metrics(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("sv/")}
