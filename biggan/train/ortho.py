"""Modified orthogonal regularization (Section 3.1, eq. 3).

R_beta(W) = beta * || W^T W (.) (1 - I) ||_F^2 : only the off-diagonal terms of the Gram
matrix of the filters are penalised, so filters are pushed towards mutual orthogonality
without constraining their norms. The paper writes W with filters as columns; torch stores
them as rows, so the Gram matrix here is W W^T with W = weight.view(out, -1) (as in
BigGAN-PyTorch's `utils.ortho`).

As BigGAN-PyTorch, the gradient is added directly to `.grad` after backward (no autograd
graph through the penalty), to every G weight with >= 2 dims except the shared embedding.
Deviation, deliberate: BigGAN-PyTorch adds 2*beta*(W W^T (.) (1-I)) W, which is the gradient
of beta/2 * R; here the added gradient is exactly that of eq. 3 (4*beta*...), so `beta`
means what the paper says. `ortho_penalty` gives eq. 3's value for logging and tests.

The gradient never builds a rows x rows matrix for a tall W (more filters than inputs, e.g.
G's first linear at 128 px: 24576 x 20, whose W W^T with its identity and mask took ~10 GB):
(W W^T (.) (1 - I)) W = W (W^T W) - diag(||w_i||^2) W, where W^T W is only cols x cols.
Wide and square W keep the W W^T form, with the diagonal zeroed in place instead of a mask
(the same values bit for bit).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _off_diagonal_gram(matrix: Tensor) -> Tensor:
    gram = matrix @ matrix.t()
    return gram * (1.0 - torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype))


def ortho_penalty(weight: Tensor) -> Tensor:
    """|| W W^T (.) (1 - I) ||_F^2 for W = weight.view(out, -1) (eq. 3 without beta)."""
    matrix = weight.reshape(weight.shape[0], -1)
    return _off_diagonal_gram(matrix).pow(2).sum()


def regularized_parameters(G: nn.Module) -> list[nn.Parameter]:
    """G's matrices/filters the regulariser applies to: every >= 2-d weight but the shared embedding."""
    shared = getattr(G, "shared", None)
    excluded = {id(p) for p in shared.parameters()} if isinstance(shared, nn.Module) else set()
    return [p for p in G.parameters() if p.dim() >= 2 and id(p) not in excluded and p.requires_grad]


def ortho_direction(matrix: Tensor) -> Tensor:
    """(W W^T (.) (1 - I)) W for a 2-d W, without a rows x rows matrix when W is tall."""
    rows, cols = matrix.shape
    if rows > cols:
        row_norms = matrix.pow(2).sum(1, keepdim=True)  # diag(W W^T) = ||w_i||^2
        return matrix @ (matrix.t() @ matrix) - row_norms * matrix
    gram = matrix @ matrix.t()
    gram.diagonal().zero_()  # = gram * (1 - I), without building I or the mask
    return gram @ matrix


@torch.no_grad()
def ortho_reg_(G: nn.Module, beta: float) -> None:
    """Add beta * d(eq. 3)/dW to the .grad of G's regularised weights (call after backward)."""
    if beta == 0:
        return
    for param in regularized_parameters(G):
        matrix = param.reshape(param.shape[0], -1)
        grad = 4.0 * beta * ortho_direction(matrix)
        if param.grad is None:
            param.grad = grad.view_as(param).clone()
        else:
            param.grad.add_(grad.view_as(param))
