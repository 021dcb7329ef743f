"""The training loop's maintenance at a tick (biggan.train.loop), one helper per job: the stats
record and the collapse rule's verdict on it, rank 0's checkpoint tick (save, prune, spectra,
sample sheet), the sample sheet itself, metrics averaged over ranks, and stopping a stream's
loader workers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.models import Generator
from biggan.models.batchnorm import LocalReducer, set_bn_reducer
from biggan.models.spectral import singular_values
from biggan.runs import RunStore
from biggan.runs.tensorboard import EventWriter
from biggan.train import dist
from biggan.train.monitor import flatten_singular_values, frobenius_norms, layer_grad_norms, top_singular_values
from biggan.train.recovery import Health
from biggan.train.state import TrainingState

PER_LAYER = ("sv/", "fro/", "grad_norm/G/", "grad_norm/D/")  # per-layer record keys, left out of meta.json


def tick_record(iteration: int, metrics: dict[str, float], its_per_s: float, state: TrainingState,
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


def checkpoint_tick(store: RunStore, state: TrainingState, cfg: ExperimentConfig, iteration: int, world: int,
                    micro_batch: int, record: dict[str, Any], health: Health, sheet: bool, board: EventWriter,
                    data: dict[str, Any]) -> None:
    """Rank 0's maintenance at a checkpoint tick: save, prune, status, sample sheet. `data`: what the
    data streams record (biggan.train.streams.DataStreams.checkpoint_data)."""
    tcfg = cfg.train
    blob = state.state_dict(cfg, iteration, world, micro_batch)
    blob["data"].update(data)
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


def close_stream(stream: Iterator) -> None:
    """Stop a real-image stream's loader workers now (test streams may be plain generators)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def average_over_ranks(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of each scalar over ranks, so every rank sees (and judges collapse on) the same values."""
    if not dist.is_distributed():
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    values /= dist.world_size()
    return dict(zip(keys, values.tolist()))
