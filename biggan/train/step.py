"""One training iteration as a list of phases: `d_steps` D steps then one G step (Section 3,
Appendix C: two D steps per G step). Each phase owns its optimizer and loss, as
stylegan2-ada's `phases` do, so the loop body never spells out the alternation.

Per phase and per worker, `accumulation` micro-batches are back-propagated before the
gradient is averaged over workers and the optimizer steps, so a global batch of
`batch_size = workers x accumulation x micro_batch` is reached with fewer or smaller workers.
With cross-replica BN, G's batch statistics are then those of one micro-batch on every
worker, not of the global batch the paper normalises over (Appendix C): a warning says so
(`biggan.train`, rank 0).

Between logging ticks a step does only what training needs: the extra singular vectors are
not refreshed (biggan.models.spectral), gradient norms are not computed, and the metrics stay
device tensors (no host synchronisation); at a tick (`step(iteration, tick=True)`) all of it.

Section 4's conditioning is a set of small terms inside the phases, each off by default
(biggan.config.train): in D's phase the R1 penalty on the real images (eq. 5; lazily every k D
steps, scaled by k, as stylegan2-ada's lazy regularisation, but added to the D step it falls on
rather than run as a separate optimizer step), orthogonal regularization on D's weights, L2 as
Adam's weight decay (biggan.train.state) and dropout before D's head; in G's phase the
regularisation of each layer's sigma_0 after backward and eq. 4's clamp after the optimizer step
(biggan.train.sigma).

For small data sets (not in the paper, off by default): every image D sees, real or generated, in
D's and G's steps and in R1's real pass, goes through the same augmentation first (DiffAugment or
ADA, biggan.train.augment), drawn per sample from the latent generator; ADA's p is adjusted every
few D steps from r_t = E[sign(D(real))] (biggan.train.ada); LeCam's regulariser joins D's loss
(biggan.train.losses). ADA's p and LeCam's anchors are run state (biggan.train.state).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biggan.config import TrainConfig
from biggan.models.batchnorm import CrossReplicaReducer, batchnorms
from biggan.models.layers import set_head_dropout
from biggan.models.spectral import extra_singular_values, sn_layers
from biggan.train import dist
from biggan.train.ada import AdaState
from biggan.train.augment import Augmenter
from biggan.train.ema import EMA
from biggan.train.losses import LeCamAnchors, hinge_d, hinge_g, lecam_penalty, r1_penalty
from biggan.train.monitor import grad_norm
from biggan.train.ortho import ortho_reg_
from biggan.train.precision import autocast_for
from biggan.train.sigma import clamp_sigma_, sigma_reg_

log = logging.getLogger("biggan.train")

# (batch, generator) -> (z, y_fake) on the training device
LatentSampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


def toggle_grad_(module: nn.Module, on: bool) -> None:
    """BigGAN-PyTorch's toggle_grad: freeze D during the G step (and G during D steps) so
    no gradient is computed for the network that is not being updated."""
    for param in module.parameters():
        param.requires_grad_(on)


@dataclass
class Phase:
    name: str  # "D" or "G"
    run: Callable[[int, bool], dict[str, Tensor]]  # (iteration, tick) -> metrics of this phase


class TrainStep:
    """Holds the networks, optimizers and streams; `step(iteration)` runs all phases."""

    def __init__(
        self,
        G: nn.Module,  # generator being trained (cross-replica BN already installed)
        D: nn.Module,  # discriminator
        ema: EMA,  # EMA of G's weights into G_ema
        opt_G: torch.optim.Optimizer,  # Adam, G lr (Appendix C: 5e-5)
        opt_D: torch.optim.Optimizer,  # Adam, D lr (Appendix C: 2e-4)
        real_batches: Iterator[tuple[Tensor, Tensor]],  # infinite (images [-1,1], labels) per micro-batch
        sample_latents: LatentSampler,  # draws (z, y) for fakes
        latent_rng: torch.Generator,  # the generator `sample_latents` draws from
        cfg: TrainConfig,  # d_steps, accumulation, ortho, precision, channels_last
        micro_batch: int,  # per-worker micro-batch size
        device: torch.device,  # where tensors live
        ada: AdaState | None = None,  # ADA's p and r_t statistics (the run's, to be checkpointed); None = fresh
        lecam: LeCamAnchors | None = None,  # LeCam's moving averages (the run's); None = fresh
    ):
        self.G, self.D, self.ema = G, D, ema
        self.ada = ada if ada is not None else AdaState(cfg.augment, device)
        self.lecam = lecam if lecam is not None else LeCamAnchors(device)
        self.opt_G, self.opt_D = opt_G, opt_D
        self.real_batches = real_batches
        self.sample_latents = sample_latents
        self.latent_rng = latent_rng
        self.cfg = cfg
        self.micro_batch = micro_batch
        self.device = device
        self.phases = [Phase("D", self._d_phase(index)) for index in range(cfg.d_steps)] + [Phase("G", self.g_step)]
        self._g_layers, self._d_layers = sn_layers(G), sn_layers(D)
        self._sn_layers = self._g_layers + self._d_layers
        self.configure(cfg)
        if cfg.accumulation > 1 and any(isinstance(bn.reducer, CrossReplicaReducer) for bn in batchnorms(G)):
            if dist.rank() == 0:  # one line per run, not one per worker
                log.warning("train.accumulation=%d with cross-replica BN: G's batch statistics are taken over "
                            "each micro-batch of %d x workers, not over the global batch of %d as in the paper "
                            "(Appendix C)", cfg.accumulation, micro_batch, cfg.batch_size)

    def configure(self, cfg: TrainConfig) -> None:
        """Take (new) training settings: at construction, and when a rollback applies a remedy
        (biggan.train.rollback). The phases read `self.cfg` at every step; D's head dropout holds
        its keep probability, and draws its masks from the latent RNG (reseeded per segment)."""
        self.cfg = cfg
        set_head_dropout(self.D, cfg.d_dropout_keep, self.latent_rng)
        self.augment = Augmenter(cfg.augment, self.ada, self.latent_rng, cfg.channels_last)

    def _d_phase(self, index: int) -> Callable[[int, bool], dict[str, Tensor]]:
        return lambda iteration, tick: self.d_step(iteration, tick, index)

    def r1_due(self, iteration: int, index: int) -> bool:
        """R1 in the `index`-th D step of `iteration`: every `d_r1_every`-th D step of the run,
        counted from the iteration alone, so a resumed run regularises the same steps."""
        if self.cfg.d_r1_gamma <= 0:
            return False
        return ((iteration - 1) * self.cfg.d_steps + index + 1) % self.cfg.d_r1_every == 0

    def step(self, iteration: int, tick: bool = True) -> dict[str, float] | dict[str, Tensor]:
        """Run every phase of iteration `iteration` (1-based); return this rank's metrics.

        `tick`: the loop logs this iteration. Then the extra singular values are refreshed and
        the metrics come back as floats (with gradient norms); otherwise as device tensors.
        G's extra vectors are refreshed at every step while sigma_0 is regularised toward
        r x sigma_1, which needs a current sigma_1 (Section 4.1).
        """
        metrics: dict[str, Tensor] = {}
        sigma = self.cfg.g_sigma
        g_extra = tick or (sigma.mode == "reg" and sigma.target == "ratio")
        with extra_singular_values(self._g_layers, enabled=g_extra), \
                extra_singular_values(self._d_layers, enabled=tick):
            for phase in self.phases:
                metrics.update(phase.run(iteration, tick))  # later D steps overwrite: the last D step is logged
        if not tick:
            return metrics
        return {name: float(value) for name, value in metrics.items()}

    def _images(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def d_step(self, iteration: int, tick: bool, index: int = 0) -> dict[str, Tensor]:
        toggle_grad_(self.D, True)
        toggle_grad_(self.G, False)
        self.opt_D.zero_grad(set_to_none=True)
        cfg = self.cfg
        r1 = self.r1_due(iteration, index)
        lecam = cfg.lecam.weight > 0
        augment = self.augment if self.augment.enabled else None
        names = ["loss/D", "loss/D_real", "loss/D_fake", "D_out/real", "D_out/fake", "D_out/real_std",
                 "D_out/fake_std"] + ["loss/D_r1"] * r1 + ["loss/D_lecam"] * lecam
        totals = torch.zeros(len(names), device=self.device)
        accumulation = cfg.accumulation
        for _ in range(accumulation):
            # BigGAN-PyTorch draws a fresh real batch for every D step.
            real, y_real = next(self.real_batches)
            real, y_real = self._images(real), y_real.to(self.device)
            z, y_fake = self.sample_latents(self.micro_batch, self.latent_rng)
            with autocast_for(self.device, cfg.precision):
                with torch.no_grad():
                    fake = self.G(z, y_fake)
                if r1:
                    # R1 differentiates D's real pass twice: that pass is built apart, in plain ops.
                    fake_logits = self.D(fake if augment is None else augment(fake), y_fake).float()
                    real_logits, penalty = r1_penalty(self.D, real, y_real, augment)
                else:
                    # One D pass over [fake; real], as BigGAN-PyTorch's G_D does (D has no batch
                    # statistics, so this equals two passes, at half the per-layer dispatch cost);
                    # augmentation draws per sample, so one call augments both halves alike.
                    both = torch.cat([fake, real])
                    logits = self.D(both if augment is None else augment(both), torch.cat([y_fake, y_real])).float()
                    fake_logits, real_logits = logits.split([fake.shape[0], real.shape[0]])
            loss, loss_real, loss_fake = hinge_d(real_logits, fake_logits)
            total = loss
            if r1:  # eq. 5: gamma / 2 E||grad D(x)||^2; the lazy form scales it by its interval
                total = loss + (0.5 * cfg.d_r1_gamma * cfg.d_r1_every) * penalty
            if lecam:  # the anchors take this evaluation's means first (Tseng et al.'s order)
                anchor_real, anchor_fake = self.lecam.update(real_logits, fake_logits, cfg.lecam.decay)
                regulariser = lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake)
                total = total + cfg.lecam.weight * regulariser
            if cfg.augment.ada != "off":
                self.ada.accumulate(real_logits)
            (total / accumulation if accumulation > 1 else total).backward()
            # Spread of D's outputs too: a D that gives one value for every image is dead.
            values = [loss.detach(), loss_real.detach(), loss_fake.detach(),
                      real_logits.detach().mean(), fake_logits.detach().mean(),
                      real_logits.detach().std(), fake_logits.detach().std()]
            if r1:
                values.append(penalty.detach())
            if lecam:
                values.append(regulariser.detach())
            totals += torch.stack(values)
        if cfg.d_ortho_beta > 0:  # Section 4.2: eq. 3 on D too (the weights agree on every rank)
            ortho_reg_(self.D, cfg.d_ortho_beta)
        dist.average_gradients_(self.D)
        metrics = {}
        if tick:  # the norm is only logged: skip its ~2 ops per parameter between ticks
            metrics["grad_norm/D"] = torch.tensor(grad_norm(self.D))
        self.opt_D.step()
        d_step = (iteration - 1) * cfg.d_steps + index + 1  # of the run: a resumed run adjusts at the same steps
        if self.ada.due(cfg.augment, d_step):  # real images judged in the interval, over all ranks
            self.ada.adjust(cfg.augment, cfg.batch_size * cfg.augment.ada_interval)
        if tick:
            metrics.update(self._small_data_metrics())
        values = totals / accumulation if accumulation > 1 else totals
        return {**dict(zip(names, values.unbind())), **metrics}

    def _small_data_metrics(self) -> dict[str, Tensor]:
        """ADA's p and last r_t, LeCam's anchors: logged at ticks (stats.jsonl, TensorBoard)."""
        cfg, out = self.cfg, {}
        if cfg.augment.ada != "off":
            out["augment/p"] = torch.tensor(self.ada.p_for(cfg.augment), dtype=torch.float64)
            if self.ada.r_t is not None:
                out["augment/r_t"] = torch.tensor(self.ada.r_t, dtype=torch.float64)
        if cfg.lecam.weight > 0 and self.lecam.updates:
            anchors = self.lecam.biased / (1.0 - cfg.lecam.decay ** self.lecam.updates)
            out["lecam/anchor_real"], out["lecam/anchor_fake"] = anchors.unbind()
        return out

    def g_step(self, iteration: int, tick: bool) -> dict[str, Tensor]:
        toggle_grad_(self.D, False)
        toggle_grad_(self.G, True)
        self.opt_G.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        accumulation = self.cfg.accumulation
        for _ in range(accumulation):
            z, y = self.sample_latents(self.micro_batch, self.latent_rng)
            with autocast_for(self.device, self.cfg.precision):
                fake = self.G(z, y)
                logits = self.D(self.augment(fake) if self.augment.enabled else fake, y).float()
            loss = hinge_g(logits)
            (loss / accumulation if accumulation > 1 else loss).backward()
            total += loss.detach()
        if self.cfg.ortho:
            # Section 3.1 eq. 3, added to the gradient as BigGAN-PyTorch's utils.ortho does;
            # weights are equal on every rank, so it survives the averaging unchanged.
            ortho_reg_(self.G, self.cfg.ortho_beta)
        metrics = {"loss/G": total / accumulation if accumulation > 1 else total}
        sigma = self.cfg.g_sigma
        if sigma.mode == "reg":  # Section 4.1, after backward like the ortho term (same on every rank)
            metrics["loss/G_sigma"] = sigma_reg_(self._g_layers, sigma)
        dist.average_gradients_(self.G)
        if tick:
            metrics["grad_norm/G"] = torch.tensor(grad_norm(self.G))
        self.opt_G.step()
        if sigma.mode == "clamp":  # eq. 4 after the optimizer step: the same weights on every rank
            metrics["sigma/G_clamped_layers"] = torch.tensor(float(clamp_sigma_(self._g_layers, sigma)))
        toggle_grad_(self.D, True)
        self.ema.update(iteration)
        return metrics
