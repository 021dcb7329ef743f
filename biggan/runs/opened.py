"""The one way to open a checkpoint for sampling: `open_checkpoint(run, checkpoint, eval_overrides)`.

Every sampler of a trained run goes through it: `biggan sample` and `biggan interpolate`, the
evaluation nodes (biggan.eval.session builds its session on it) and `biggan export`. So a
sample drawn from the command line is drawn exactly as evaluation draws it: the EMA generator
in the run's memory layout, on `eval.device`, with standing statistics (Appendix C.1) from
`eval.standing_passes` passes of `eval.standing_batch` latents at the sampling truncation, seeded
with `eval.seed`. (Training's own progress sheets are the exception: they use
`train.standing_stats_batches` to stay cheap at every checkpoint.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from biggan.config import EvalConfig, ExperimentConfig, apply_overrides
from biggan.models import Discriminator, Generator
from biggan.runs.checkpoints import CheckpointInfo
from biggan.runs.networks import config_of, discriminator_from_state, generator_from_state
from biggan.runs.store import RunStore
from biggan.sampling.device import resolve_device
from biggan.sampling.standing import standing_stats_


def with_eval(cfg: ExperimentConfig, eval_overrides: dict[str, Any] | EvalConfig | None) -> ExperimentConfig:
    """The run's config with a caller's eval section (an EvalConfig, or dotted overrides of the run's)."""
    if eval_overrides is None:
        return cfg
    if isinstance(eval_overrides, EvalConfig):
        return cfg.model_copy(update={"eval": eval_overrides})
    return cfg.model_copy(update={"eval": apply_overrides(cfg.eval, eval_overrides)})


def prepare_for_sampling(G: Generator, cfg: ExperimentConfig, truncation: float | None,
                         device: torch.device) -> Generator:
    """G on `device` with standing statistics taken at `truncation` as evaluation takes them, in eval mode."""
    ecfg = cfg.eval
    G.to(device)
    standing_stats_(G, cfg.model.num_classes, ecfg.standing_passes, ecfg.standing_batch, truncation, device,
                    prior=cfg.model.latent, seed=ecfg.seed)
    return G.eval()


@dataclass
class OpenedCheckpoint:
    store: RunStore  # the run
    info: CheckpointInfo  # the checkpoint opened
    cfg: ExperimentConfig  # the checkpoint's config, eval overrides applied
    device: torch.device  # eval.device, resolved
    state: dict[str, Any] = field(repr=False)  # the checkpoint's state dicts

    def generator(self, truncation: float | None, ema: bool = True) -> Generator:
        """A fresh G_ema (or the trained G) ready to sample at `truncation` (see the module docstring)."""
        G = generator_from_state(self.state, ema=ema, channels_last=self.cfg.train.channels_last)
        return prepare_for_sampling(G, self.cfg, truncation, self.device)

    def discriminator(self) -> Discriminator:
        return discriminator_from_state(self.state, channels_last=self.cfg.train.channels_last).to(self.device)


def open_checkpoint(
    run: str | RunStore,  # the run's location or its store object
    checkpoint: str | None = None,  # name or iteration; None = the one the run marked for evaluation
    eval_overrides: dict[str, Any] | EvalConfig | None = None,  # e.g. {"device": "cpu", "standing_passes": 16}
) -> OpenedCheckpoint:
    """A checkpoint of a run, loaded (sha256 checked), with its config and sampling device."""
    store = run if isinstance(run, RunStore) else RunStore(run)
    store.require()
    info = store.checkpoint(checkpoint) if checkpoint else store.checkpoint_to_evaluate()
    state = store.load_state(info)
    cfg = with_eval(config_of(state), eval_overrides)
    return OpenedCheckpoint(store=store, info=info, cfg=cfg, device=resolve_device(cfg.eval.device), state=state)
