"""Spectral normalization with top-k singular value tracking (Section 4.1, Appendix C).

Follows the `SN` mixin of the authors' BigGAN-PyTorch (`layers.py`): the left singular
vector estimates `u0..u{k-1}` are buffers, one power-iteration step per forward runs over
all k vectors with Gram-Schmidt between them (so vector i converges to the i-th singular
pair), the weight is divided by the first singular value estimate, and the k estimates are
stored in `sv0..sv{k-1}` buffers while training so they can be logged (Section 4.1 monitors
the top three singular values of every layer to spot collapse).

Only the first vector normalises the weight, and its update never depends on the others
(Gram-Schmidt runs against the vectors BEFORE it), so the trainer switches the extra k - 1
vectors off between logging ticks (`extra_singular_values(..., enabled=False)`): sigma_0, u0
and the gradient are bit-for-bit those of tracking all k, at half the per-forward op count
for k = 3. At a tick every forward refreshes all k again, warm-started from the last tick.

So the logged values are power-iteration estimates, not the Arnoldi iteration the paper uses to
read the top three (Section 4.1): sigma_0 takes one warm-started step per forward and follows the
weights closely; sigma_1 and sigma_2 take one step per logging tick. Against `torch.linalg.svdvals`
on weights trained 100 iterations (digits32, a tick every 10) they were within 1.2%, 7.3% and 5.0%
(tests/unit/test_models_sv_accuracy.py holds them to 3%, 15%, 15%). The collapse rule reads sigma_0 only.

SN can be switched off per network (`model.g_sn`, `model.d_sn`: Section 4 studies G and D with
and without it). A layer with SN off uses its weight as it is, and still runs the power
iteration while training, so its singular values are tracked and logged as with SN on.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biggan.models.precision import at_least_fp32


def _gram_schmidt(x: Tensor, basis: list[Tensor]) -> Tensor:
    """Remove from row vector `x` its projection on each (unit) row vector in `basis`."""
    for y in basis:
        x = x - (x @ y.t()) * y
    return x


def _normalize(x: Tensor, eps: float) -> Tensor:
    """F.normalize(x, dim=1, eps=eps) with one op fewer (no expand_as): the same values."""
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(eps)


def power_iteration(
    weight: Tensor,  # (out, in) matrix
    us: list[Tensor],  # k buffers of shape (1, out), updated in place when update=True
    update: bool,  # write the new estimates back into the buffers (training only)
    eps: float,  # normalisation epsilon (Appendix C: 1e-4)
) -> list[Tensor]:
    """One step of power iteration on k vectors; returns k singular value estimates.

    The vector updates carry no gradient; the first returned estimate does (through `weight`),
    as in BigGAN-PyTorch, so the gradient of W / sigma includes the sigma term.
    """
    new_us: list[Tensor] = []
    new_vs: list[Tensor] = []
    svs: list[Tensor] = []
    grad = torch.is_grad_enabled()
    for i, u in enumerate(us):
        with torch.no_grad():
            v = _normalize(_gram_schmidt(u @ weight, new_vs), eps)
        # Only sigma_0 divides the weight; the others are read for monitoring, so they need
        # no autograd graph (a third fewer backward nodes per SN layer at k = 3).
        with torch.set_grad_enabled(grad and i == 0):
            # W v^T once, with the graph for sigma_0: BigGAN-PyTorch computes this product
            # twice (for u's update and for sigma); the values are the same.
            wv = v @ weight.t()
            with torch.no_grad():
                u_next = _normalize(_gram_schmidt(wv, new_us), eps)
                if update:
                    u.copy_(u_next)
            svs.append((wv @ u_next.t()).squeeze())
        new_vs.append(v)
        new_us.append(u_next)
    return svs


class SpectralNorm:
    """Mixin: call `_sn_init` in __init__, use `self.normalized_weight()` in forward."""

    weight: Tensor

    def _sn_init(
        self,
        num_svs: int,  # singular values tracked (Section 4.1 monitors the top 3)
        num_iterations: int,  # power iterations per forward (paper: 1)
        num_outputs: int,  # rows of the weight matrix
        eps: float,  # Appendix C: 1e-4
        enabled: bool = True,  # divide the weight by sigma_0; off: the raw weight (still tracked)
    ) -> None:
        self.sn_num_svs = num_svs
        self.sn_num_iterations = num_iterations
        self.sn_eps = eps
        self.sn_enabled = enabled
        self.sn_track_extra = True  # refresh u1.. / sv1.. too (off between logging ticks)
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, num_outputs))
            self.register_buffer(f"sv{i}", torch.ones(1))

    @property
    def sn_us(self) -> list[Tensor]:
        return [getattr(self, f"u{i}") for i in range(self.sn_num_svs)]

    @property
    def sn_svs(self) -> list[Tensor]:
        return [getattr(self, f"sv{i}") for i in range(self.sn_num_svs)]

    def weight_matrix(self) -> Tensor:
        """The weight as an (out, in) matrix, as a view of its memory.

        A channels_last conv weight is stored (out, kh, kw, in): its matrix is taken in that
        column order rather than copied into (out, in, kh, kw) order on every forward (85 MB
        for a 1536-channel 3x3 conv). Permuting the columns changes neither the singular
        values nor the left singular vector u; v is permuted with them.
        """
        w = self.weight
        if w.dim() == 4 and not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last):
            w = w.permute(0, 2, 3, 1)
        return w.reshape(w.shape[0], -1)

    def normalized_weight(self) -> Tensor:
        if not self.sn_enabled:
            if self.training:  # monitoring only: no graph through the estimates
                with torch.no_grad():
                    self._estimate()
            return self.weight
        # Dividing by max(sigma, eps) instead of sigma (BigGAN-PyTorch) only differs for a
        # degenerate weight with sigma < eps: an all-zero weight (e.g. zeroed cBN projections,
        # which must give gain 1 and bias 0) then stays zero instead of becoming 0/0 = NaN.
        # sigma(W / max(sigma, eps)) <= 1 still holds, so the Lipschitz bound is kept.
        return self.weight / self._estimate()[0].clamp_min(self.sn_eps)

    def _estimate(self) -> list[Tensor]:
        """The power iteration's singular value estimates (stored in sv0.. while training); the
        first carries the gradient through the weight (see power_iteration)."""
        matrix = self.weight_matrix()
        svs: list[Tensor] = []
        # Power iteration in fp32 even under bf16 autocast: sigma divides every weight, and a
        # bf16 estimate (3 significant digits) would add noise to all of them.
        us = self.sn_us if self.sn_track_extra else [self.u0]
        device = matrix.device.type
        with torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else contextlib.nullcontext():
            for _ in range(self.sn_num_iterations):
                svs = power_iteration(at_least_fp32(matrix), us, update=self.training, eps=self.sn_eps)
        if self.training:
            with torch.no_grad():
                for buf, sv in zip(self.sn_svs, svs):
                    buf.copy_(sv.reshape(1))
        return svs


class SNConv2d(nn.Conv2d, SpectralNorm):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,  # 3 for block convs, 1 for shortcuts and attention
        padding: int,
        bias: bool,
        num_svs: int,
        num_iterations: int,
        eps: float,
        enabled: bool = True,
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._sn_init(num_svs, num_iterations, out_channels, eps, enabled)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, SpectralNorm):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        num_svs: int,
        num_iterations: int,
        eps: float,
        enabled: bool = True,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._sn_init(num_svs, num_iterations, out_features, eps, enabled)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(nn.Embedding, SpectralNorm):
    """D's projection embedding (BigGAN-PyTorch normalises it like any other weight)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_svs: int,
        num_iterations: int,
        eps: float,
        enabled: bool = True,
    ) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self._sn_init(num_svs, num_iterations, num_embeddings, eps, enabled)

    def forward(self, y: Tensor) -> Tensor:
        return F.embedding(y, self.normalized_weight())


def singular_values(module: nn.Module) -> dict[str, list[float]]:
    """Tracked top-k singular values of every SN layer in `module`: {layer name: [sv0, ...]}.

    These are the power-iteration estimates stored during the last training forward.
    """
    return {
        name: [float(sv.item()) for sv in sub.sn_svs]
        for name, sub in module.named_modules()
        if isinstance(sub, SpectralNorm)
    }


def set_sn_tracking(module: nn.Module, num_iterations: int) -> None:
    """Change the power iterations per forward of every SN layer (e.g. many for a precise read)."""
    for sub in module.modules():
        if isinstance(sub, SpectralNorm):
            sub.sn_num_iterations = num_iterations


def sn_layers(module: nn.Module) -> list[SpectralNorm]:
    """Every spectrally normalised layer inside `module`."""
    return [sub for sub in module.modules() if isinstance(sub, SpectralNorm)]


@contextlib.contextmanager
def extra_singular_values(layers: list[SpectralNorm], enabled: bool):
    """Within the block, the layers refresh their extra singular vectors only if `enabled`.

    The trainer disables them except at logging ticks (Section 4.1's monitoring reads them
    only there); the first vector, which normalises the weight, is updated either way.
    """
    before = [layer.sn_track_extra for layer in layers]
    for layer in layers:
        layer.sn_track_extra = enabled
    try:
        yield
    finally:
        for layer, value in zip(layers, before):
            layer.sn_track_extra = value
