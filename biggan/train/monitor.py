"""Training signals: gradient norms, singular values as metrics, progress lines, collapse detection.

Section 4 of the paper watches D's loss and the top singular values of every layer (Figure 3,
Appendix F) and stops "just after collapse", reporting the checkpoint saved just before.
`CollapseDetector` turns that into a rule over the logged intervals. Appendix F also follows
each layer's Frobenius norm and the gradient norms: `fro/<net>/<layer>` and
`grad_norm/<net>/<layer>` in every stats record (log ticks only; the step between ticks skips them).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from biggan.config import CollapseConfig
from biggan.models.spectral import SpectralNorm
from biggan.timefmt import duration


def grad_norm(module: nn.Module) -> float:
    """L2 norm of all gradients of `module` (NaN/Inf propagate, so the collapse rule sees them)."""
    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.stack(norms).norm())


def _weighted_layers(module: nn.Module) -> list[tuple[str, SpectralNorm]]:
    """The layers whose singular values are tracked (every SN layer, SN on or off), by name."""
    return [(name, sub) for name, sub in module.named_modules() if isinstance(sub, SpectralNorm)]


def layer_grad_norms(module: nn.Module, net: str) -> dict[str, torch.Tensor]:
    """{"grad_norm/<net>/<layer>": ||dL/dW||} of each tracked layer's weight (device tensors)."""
    return {f"grad_norm/{net}/{name}": layer.weight.grad.detach().float().norm()
            for name, layer in _weighted_layers(module) if layer.weight.grad is not None}


@torch.no_grad()
def frobenius_norms(module: nn.Module, net: str) -> dict[str, float]:
    """{"fro/<net>/<layer>": ||W||_F} of each tracked layer's raw weight (Appendix F)."""
    layers = _weighted_layers(module)
    if not layers:
        return {}
    norms = torch.stack([layer.weight.detach().float().norm() for _name, layer in layers]).tolist()
    return {f"fro/{net}/{name}": value for (name, _layer), value in zip(layers, norms)}


def flatten_singular_values(prefix: str, values: dict[str, list[float]]) -> dict[str, float]:
    """{"sv/G/blocks.0.conv1/0": s0, ...}: scalar metrics Ray and dashboards can plot."""
    flat = {}
    for layer, svs in values.items():
        for index, value in enumerate(svs):
            flat[f"sv/{prefix}/{layer}/{index}"] = float(value)
    return flat


def top_singular_values(values: dict[str, list[float]]) -> dict[str, float]:
    """Layer name -> its largest singular value (the one whose explosion marks collapse)."""
    return {layer: float(svs[0]) for layer, svs in values.items() if svs}


def progress_line(iteration: int, total: int, metrics: dict[str, float], images_per_s: float,
                  seconds_per_iteration: float, workers: str = "") -> str:
    """One human line: iteration, (an elastic run's `6 of 8 workers`), losses, throughput, ETA."""
    eta = max(total - iteration, 0) * seconds_per_iteration
    return (f"[{iteration}/{total}] {workers + ' | ' if workers else ''}D {metrics.get('loss/D', float('nan')):.4f} "
            f"(real {metrics.get('loss/D_real', float('nan')):.4f}, "
            f"fake {metrics.get('loss/D_fake', float('nan')):.4f}) "
            f"G {metrics.get('loss/G', float('nan')):.4f} | {images_per_s:.1f} img/s | ETA {duration(eta)}")


@dataclass
class CollapseVerdict:
    collapsed: bool  # the rule fired (patience reached or a non-finite value)
    tripped: bool  # this interval alone tripped the rule
    first_iteration: int | None  # first iteration of the tripping streak
    reason: str


@dataclass
class CollapseDetector:
    """Configurable collapse rule over logged intervals (Section 4).

    An interval trips when D's loss exceeds `d_loss_jump` x its running median (and the
    `d_loss_floor`), or some
    layer's top singular value exceeds `sv_explosion` x that layer's running median. The rule
    fires after `patience` consecutive tripping intervals (one-off spikes are common and
    harmless), and immediately on NaN/Inf. The running medians cover the last `window`
    healthy intervals and only arm after `warmup` of them (early training moves fast).
    Tripping values are not added to the medians, so a collapse cannot raise its own bar.
    """

    config: CollapseConfig
    _d_losses: deque = field(init=False)
    _svs: dict[str, deque] = field(init=False, default_factory=dict)
    _streak: int = field(init=False, default=0)
    _streak_start: int | None = field(init=False, default=None)
    _seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._d_losses = deque(maxlen=self.config.window)

    def update(self, iteration: int, d_loss: float, top_svs: dict[str, float],
               extra_values: Iterable[float] = ()) -> CollapseVerdict:
        if not self.config.enabled:
            return CollapseVerdict(False, False, None, "")
        values = [d_loss, *top_svs.values(), *extra_values]
        if any(not math.isfinite(v) for v in values):
            return CollapseVerdict(True, True, iteration, f"non-finite value at iteration {iteration}")
        reasons = []
        armed = self._seen >= self.config.warmup and len(self._d_losses) >= 2
        if armed:
            median = statistics.median(self._d_losses)
            if median > 0 and d_loss > max(self.config.d_loss_jump * median, self.config.d_loss_floor):
                reasons.append(f"D loss {d_loss:.4g} > {self.config.d_loss_jump} x running median {median:.4g}")
            for layer, value in top_svs.items():
                history = self._svs.get(layer)
                if history and len(history) >= 2:
                    sv_median = statistics.median(history)
                    if sv_median > 0 and value > self.config.sv_explosion * sv_median:
                        reasons.append(f"top SV of {layer} {value:.4g} > {self.config.sv_explosion} x "
                                       f"running median {sv_median:.4g}")
        self._seen += 1
        if reasons:
            if self._streak == 0:
                self._streak_start = iteration
            self._streak += 1
            collapsed = self._streak >= self.config.patience
            return CollapseVerdict(collapsed, True, self._streak_start, "; ".join(reasons))
        self._streak, self._streak_start = 0, None
        self._d_losses.append(d_loss)
        for layer, value in top_svs.items():
            self._svs.setdefault(layer, deque(maxlen=self.config.window)).append(value)
        return CollapseVerdict(False, False, None, "")

    def state_dict(self) -> dict[str, Any]:
        return {"d_losses": list(self._d_losses), "svs": {k: list(v) for k, v in self._svs.items()},
                "streak": self._streak, "streak_start": self._streak_start, "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._d_losses = deque(state["d_losses"], maxlen=self.config.window)
        self._svs = {k: deque(v, maxlen=self.config.window) for k, v in state["svs"].items()}
        self._streak, self._streak_start, self._seen = state["streak"], state["streak_start"], state["seen"]


@dataclass
class DeadRunRule:
    """A dead discriminator stops the run like a collapse (cleanly, evaluating the last healthy
    checkpoint): D's outputs flat over real and generated images, or D's loss pinned at the
    hinge's chance level 2.0 with a vanishing gradient, for `patience` consecutive intervals."""

    config: CollapseConfig
    _streak: int = field(init=False, default=0)

    def update(self, metrics: dict[str, float]) -> CollapseVerdict:
        cfg = self.config
        if not cfg.enabled:
            return CollapseVerdict(False, False, None, "")
        spread = max(metrics.get("D_out/real_std", 1.0), metrics.get("D_out/fake_std", 1.0))
        gap = abs(metrics.get("D_out/real", 0.0) - metrics.get("D_out/fake", 1.0))
        reasons = []
        if spread < cfg.flat_d_spread and gap < cfg.flat_d_spread:
            reasons.append(f"D is flat: it gives {metrics.get('D_out/real', 0.0):.4g} for every real and every "
                           f"generated image (spread {spread:.2g})")
        pinned = abs(metrics.get("loss/D", 0.0) - 2.0) < cfg.pinned_d_loss_band
        if pinned and metrics.get("grad_norm/D", 1.0) < cfg.vanishing_grad:
            reasons.append(f"D's loss is pinned at {metrics['loss/D']:.4g} (chance) with gradient norm "
                           f"{metrics['grad_norm/D']:.2g}")
        self._streak = self._streak + 1 if reasons else 0
        return CollapseVerdict(self._streak >= cfg.patience, bool(reasons), None, "; ".join(reasons))

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self._streak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._streak = int(state.get("streak", 0))
