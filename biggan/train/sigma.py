"""Section 4.1: conditioning the top singular value sigma_0 of each of G's layers.

The paper watches sigma_0 of G's layers grow and explode at collapse (Figure 3) and tries two
remedies, "both with and without Spectral Normalization" (so on the raw weight W, before SN
divides it):

- regularisation toward a target: here strength x (sigma_0 - target)^2 per layer, its gradient
  2 strength (sigma_0 - target) u_0 v_0^T added to W's gradient after backward (as ortho.py adds
  eq. 3's), where u_0 and v_0 are the layer's top singular vectors from SN's power iteration;
- eq. 4's clamp after each G optimizer step: W <- W - max(0, sigma_0 - sigma_clamp) u_0 v_0^T,
  with the top singular pair from a partial SVD (`top_singular_pairs`: block power iteration,
  warm-started from SN's vectors, to convergence, then Rayleigh-Ritz).

The target is a fixed value (sigma_reg / sigma_clamp) or r x sg(sigma_1), the second singular
value with its gradient stopped, so the penalty can never raise sigma_1 to meet sigma_0 ("sg" in
the paper). The regulariser reads sigma_1 from SN's second tracked vector, which the step then
refreshes at every G forward instead of only at logging ticks (biggan.train.step: one more
power-iteration vector per layer per forward, docs/stability.md has the cost); the clamp takes
sigma_1 from its own partial SVD.
"""

from __future__ import annotations

import torch
from torch import Tensor

from biggan.config.train import SigmaConditioning
from biggan.models.spectral import SpectralNorm

BLOCK = 4  # vectors of the block power iteration: the top pair converges at (sigma_BLOCK / sigma_0)^2 per step
MAX_ITERATIONS = 200
TOLERANCE = 1e-6  # relative residual ||W v_0 - sigma_0 u_0|| / sigma_0 at which the pair counts as converged
# ... or the relative change of sigma_0 between two steps at which it has stalled: near-degenerate
# top singular values (every layer starts orthogonal, all of them 1) make the vectors converge
# slowly, while sigma_0 itself is exact to second order. Clamping along a vector mixed within such
# a cluster leaves a top singular value between sigma_1 and sigma_0, which are then that close.
STALL = 1e-7
STALL_AFTER = 25  # iterations before a stall counts (well-separated tops meet TOLERANCE well before)


def _orthonormal_rows(x: Tensor) -> Tensor:
    q, _ = torch.linalg.qr(x.t())
    return q.t()


def top_singular_pairs(matrix: Tensor, start: Tensor, tolerance: float = TOLERANCE,
                       max_iterations: int = MAX_ITERATIONS) -> tuple[Tensor, Tensor, Tensor]:
    """(sigmas, us, vs): the top singular values of `matrix` (out, in) and their left (rows of us)
    and right (rows of vs) vectors, as many as `start` has rows (left vectors to start from, e.g.
    SN's u buffers), by block power iteration with a Rayleigh-Ritz step, until the top pair's
    residual is below `tolerance` (or `max_iterations`)."""
    block = min(start.shape[0], *matrix.shape)
    # A residual below a few ulps of the matrix cannot be reached: the floor keeps fp32 from
    # iterating to max_iterations on large weights.
    tolerance = max(tolerance, 20 * torch.finfo(matrix.dtype).eps)
    right = _orthonormal_rows(start[:block] @ matrix)
    previous = None
    for iteration in range(max_iterations):
        left = _orthonormal_rows(right @ matrix.t())
        right = _orthonormal_rows(left @ matrix)
        # Rayleigh-Ritz: the SVD of the small projected matrix rotates the blocks onto singular vectors.
        p, sigmas, qh = torch.linalg.svd(left @ matrix @ right.t())
        us, vs = p.t() @ left, qh @ right
        # u_0 W = sigma_0 v_0 holds by construction (the right block spans left @ W); the other
        # side is the test: W v_0 = sigma_0 u_0.
        residual = torch.linalg.vector_norm(vs[0] @ matrix.t() - sigmas[0] * us[0])
        scale = float(sigmas[0].clamp_min(torch.finfo(matrix.dtype).tiny))
        stalled = iteration >= STALL_AFTER and abs(float(sigmas[0]) - previous) <= STALL * scale
        if float(residual) <= tolerance * scale or stalled:
            break
        previous = float(sigmas[0])
    return sigmas, us, vs


def _start_vectors(layer: SpectralNorm, matrix: Tensor) -> Tensor:
    """SN's u buffers (u_0 tracks the weight every forward), topped up to BLOCK with fixed vectors."""
    us = [u.to(matrix.dtype) for u in layer.sn_us]
    missing = min(BLOCK, matrix.shape[0]) - len(us)
    if missing > 0:  # the same fixed vectors every time: the clamp stays a deterministic function of W
        g = torch.Generator(device="cpu").manual_seed(matrix.shape[0] * 7919 + matrix.shape[1])
        us.append(torch.randn(missing, matrix.shape[0], generator=g).to(matrix))
    return torch.cat(us)[: max(1, min(BLOCK, matrix.shape[0]))]


@torch.no_grad()
def clamp_sigma_(layers: list[SpectralNorm], cfg: SigmaConditioning) -> int:
    """Eq. 4 on every layer (call after G's optimizer step); returns how many layers were clamped."""
    clamped = 0
    for layer in layers:
        matrix = layer.weight_matrix()  # a view of the weight's memory (SpectralNorm.weight_matrix)
        if matrix.data_ptr() != layer.weight.data_ptr() or not matrix.is_contiguous():
            raise RuntimeError(f"{type(layer).__name__}'s weight matrix is not a view of its weight: cannot clamp it")
        sigmas, us, vs = top_singular_pairs(matrix.float(), _start_vectors(layer, matrix.float()))
        sigma_1 = sigmas[1] if sigmas.numel() > 1 else sigmas.new_zeros(())
        target = cfg.value if cfg.target == "fixed" else cfg.ratio * sigma_1
        excess = float(sigmas[0] - target)
        if excess > TOLERANCE * float(sigmas[0]):  # above the target by more than the estimate's own error
            matrix.sub_((excess * torch.outer(us[0], vs[0])).to(matrix.dtype))
            clamped += 1
    return clamped


def sigma_penalty(layer: SpectralNorm, cfg: SigmaConditioning) -> tuple[Tensor, Tensor]:
    """(sigma_0 with a graph through the weight, target without one) of one layer, from SN's u_0:
    v_0 = u_0 W / ||u_0 W|| and sigma_0 = u_0 W v_0^T. The ratio target r x sigma_1 comes from SN's
    second vector under no_grad: sg(sigma_1)."""
    matrix = layer.weight_matrix()
    u0 = layer.u0.to(matrix.dtype)
    with torch.no_grad():
        v0 = torch.nn.functional.normalize(u0 @ matrix, dim=1, eps=layer.sn_eps)
    sigma_0 = (u0 @ matrix @ v0.t()).squeeze()
    if cfg.target == "fixed":
        return sigma_0, sigma_0.new_tensor(cfg.value)
    with torch.no_grad():
        sigma_1 = layer.sv1.to(matrix.dtype).squeeze()
    return sigma_0, cfg.ratio * sigma_1


def sigma_reg_(layers: list[SpectralNorm], cfg: SigmaConditioning) -> Tensor:
    """Add the gradient of sum over layers of strength x (sigma_0 - target)^2 to the weights'
    .grad (call after backward, before averaging over workers: every rank has the same weights
    and SN vectors, so the same term); returns the penalty's value."""
    total = torch.zeros(())
    for layer in layers:
        weight = layer.weight
        with torch.enable_grad():
            sigma_0, target = sigma_penalty(layer, cfg)
            penalty = cfg.strength * (sigma_0 - target).square()
            (grad,) = torch.autograd.grad(penalty, weight)
        weight.grad = grad if weight.grad is None else weight.grad.add_(grad)
        total = total.to(penalty.device) + penalty.detach()
    return total
