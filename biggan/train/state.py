"""Everything a training run carries from one iteration to the next, as one object with its
two halves `state_dict()` / `load_state_dict()` (torchtitan's checkpointer habit): the run store
saves what the first returns and a resumed run hands it back to the second."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from biggan.config import ExperimentConfig
from biggan.interop import InitReport, init_from
from biggan.models import Generator, build_models, empty, generator_class, seeded
from biggan.models.batchnorm import CrossReplicaReducer, set_bn_reducer
from biggan.models.spectral import SpectralNorm
from biggan.runs import RunStore
from biggan.runs.naming import find_checkpoint
from biggan.runs.networks import config_of
from biggan.runs.store import INIT_FILE
from biggan.train import dist
from biggan.train.ada import AdaState
from biggan.train.ema import EMA
from biggan.train.losses import LeCamAnchors
from biggan.train.monitor import CollapseDetector, DeadRunRule
from biggan.train.precision import resolve_precision

log = logging.getLogger("biggan.train")


@dataclass
class TrainingState:
    G: Generator  # trained G (cross-replica BN when distributed)
    D: torch.nn.Module  # discriminator
    G_ema: Generator  # EMA of G's weights, sampled from (local BN)
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    ema: EMA  # updates G_ema from G
    detector: CollapseDetector  # the collapse rule's running medians
    dead: DeadRunRule  # the dead-discriminator rule's streak
    latent_rng: torch.Generator  # draws the fakes' z and y
    precision: str  # the arithmetic train.precision resolved to ("fp32" or "bf16"), same on every rank
    ada: AdaState  # ADA's p and r_t statistics (train.augment.ada; idle when off)
    lecam: LeCamAnchors  # LeCam's moving averages of D's outputs (train.lecam; idle when off)

    def state_dict(self, cfg: ExperimentConfig, iteration: int, world: int, micro_batch: int) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "iteration": iteration,
            "rng": {"torch": torch.get_rng_state(), "latent": self.latent_rng.get_state()},
            "data": {"segment_start": iteration, "seed": cfg.train.seed, "world_size": world,
                     "micro_batch": micro_batch,
                     "images_seen": iteration * cfg.train.batch_size * cfg.train.d_steps},
            "config": cfg.model_dump(mode="json"), "monitor": self.detector.state_dict(),
            "monitor_dead": self.dead.state_dict(),
            "precision": {"resolved": self.precision, "device_type": self.G.linear.weight.device.type},
            # Small-data state (biggan.train.ada, biggan.train.losses): plain numbers, exact on resume.
            "small_data": {"ada": self.ada.state_dict(), "lecam": self.lecam.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any], cfg: ExperimentConfig) -> int:
        """Restore weights, optimizers and the collapse monitor; returns the iteration.

        The optimizers' hyper-parameters then come from `cfg`, not from the checkpoint: a run
        resumed with a new learning rate, betas or eps (biggan.experiment.SAFE_ON_RESUME) uses
        them, instead of silently keeping the values saved in the optimizer state.
        """
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.apply_optimizer_settings(cfg)
        if "monitor" in state:
            self.detector.load_state_dict(state["monitor"])
        self.dead.load_state_dict(state.get("monitor_dead", {}))
        small = state.get("small_data", {})  # absent in checkpoints from before ADA and LeCam: fresh state
        self.ada.load_state_dict(small.get("ada", {"p": cfg.train.augment.ada_p}), cfg.train.augment)
        if "lecam" in small:
            self.lecam.load_state_dict(small["lecam"])
        recorded = state.get("precision", {})
        if cfg.train.precision == "auto" and recorded.get("device_type") == self.G.linear.weight.device.type:
            # `auto` on a CPU is a measurement: a resumed run keeps the answer it started with, so
            # an uninterrupted run and a resumed one do the same arithmetic.
            self.precision = recorded["resolved"]
        return int(state["iteration"])

    def apply_optimizer_settings(self, cfg: ExperimentConfig) -> None:
        """Learning rates, betas, eps and D's weight decay from `cfg` (a resume or a remedy)."""
        for optimizer, settings in ((self.opt_G, g_adam(cfg)), (self.opt_D, d_adam(cfg))):
            for group in optimizer.param_groups:
                group.update(settings)


def g_adam(cfg: ExperimentConfig) -> dict[str, Any]:
    """G's Adam settings (Appendix C)."""
    t = cfg.train
    return {"lr": t.g_lr, "betas": tuple(t.betas), "eps": t.adam_eps, "weight_decay": 0.0}


def d_adam(cfg: ExperimentConfig) -> dict[str, Any]:
    """D's Adam settings: its own betas when train.d_betas is set, and L2 as Adam's weight decay
    (Section 4.2: "L2", added to the gradient, not AdamW's decoupled decay); 0 changes nothing."""
    t = cfg.train
    return {"lr": t.d_lr, "betas": tuple(t.d_betas if t.d_betas is not None else t.betas), "eps": t.adam_eps,
            "weight_decay": t.d_weight_decay}


def check_sn_switches(G: torch.nn.Module, D: torch.nn.Module, cfg: ExperimentConfig) -> None:
    """Every SN layer of G and of D follows model.g_sn / model.d_sn: a network family that built a
    layer without `biggan.models.layers.sn_factory` would silently ignore the switch."""
    for net, module, wanted in (("G", G, cfg.model.g_sn), ("D", D, cfg.model.d_sn)):
        wrong = [name for name, sub in module.named_modules()
                 if isinstance(sub, SpectralNorm) and sub.sn_enabled != wanted]
        if wrong:
            raise ValueError(f"model.{net.lower()}_sn={wanted} but {type(module).__name__} built {wrong[0]} "
                             f"(and {len(wrong) - 1} more) the other way")


def build_training_state(cfg: ExperimentConfig, device: torch.device, world: int) -> TrainingState:
    """Networks, optimizers, EMA and monitor, initialised identically on every rank."""
    tcfg = cfg.train
    # Same initialisation everywhere, from the seed alone (the loop broadcasts to be certain).
    G, D = build_models(cfg.model, seeded(tcfg.seed))
    check_sn_switches(G, D, cfg)
    # Local BN reducer: sampling on rank 0 alone must not all-reduce.
    G_ema = empty(generator_class(cfg.model), cfg.model)
    G_ema.load_state_dict(G.state_dict())
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    for net in (G, D, G_ema):
        net.to(device=device, memory_format=memory_format)
        net.train()
    G_ema.eval()
    if world > 1:
        set_bn_reducer(G, CrossReplicaReducer())  # cross-replica BN (Section 3 / Appendix C)
    opt_G = torch.optim.Adam(G.parameters(), **g_adam(cfg), foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), **d_adam(cfg), foreach=True)
    return TrainingState(G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D,
                         ema=EMA(G, G_ema, tcfg.ema_decay, tcfg.ema_start),
                         detector=CollapseDetector(tcfg.collapse), dead=DeadRunRule(tcfg.collapse),
                         latent_rng=torch.Generator(device=device),
                         precision=agreed_precision(tcfg.precision, device),
                         ada=AdaState(tcfg.augment, device), lecam=LeCamAnchors(device))


def agreed_precision(precision: str, device: torch.device) -> str:
    """Rank 0 resolves `precision` (for `auto` on a CPU, a measurement) and every rank takes
    its answer: ranks measuring for themselves could disagree."""
    resolved = resolve_precision(precision, device) if dist.rank() == 0 else "fp32"
    return ("fp32", "bf16")[dist.broadcast_int(int(resolved == "bf16"), device)]


def broadcast_initial_weights(state: TrainingState) -> None:
    for net in (state.G, state.D, state.G_ema):
        dist.broadcast_module_(net)


def start_from_source(state: TrainingState, cfg: ExperimentConfig, store: RunStore) -> InitReport:
    """A new run's first start with `train.init_from`: G, D and G_ema from the source checkpoint.

    Runs on EVERY rank, after the EMA has copied G into G_ema (init_from overwrites both) and
    before the initial-weight broadcast: each rank reads the source itself, so a bad source fails
    on all ranks alike instead of leaving the others waiting in a broadcast. The optimizers stay
    the fresh ones `build_training_state` made, and the run starts at iteration 0. Class
    embeddings redrawn for a new class count are drawn from the run's seed, alike on every rank.
    """
    run, info = find_checkpoint(cfg.run_root, cfg.train.init_from or "")
    source = run.load_state(info, map_location="cpu")  # the optimizer states in it are never moved
    # Redrawn class embeddings come from the run's seed: the same on every rank and in every rerun.
    report = init_from(state.G, state.D, state.G_ema, source, config_of(source).model, cfg.model,
                       generator=seeded(cfg.train.seed))
    if dist.rank() == 0:
        log.info("started from %s (iteration %d): %s", info.uri, info.iteration, report.summary())
        store.file(INIT_FILE).write_json({
            "source": info.uri, "source_iteration": info.iteration, "summary": report.summary(),
            "reinitialised": report.reinitialised, "copied": report.copied, "notes": report.notes}, indent=2)
    return report
