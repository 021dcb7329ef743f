"""Non-local (self-attention) block (Section 3, Appendix B; Zhang et al. 2018 SA-GAN).

Channel reductions follow BigGAN-PyTorch's `Attention`: theta and phi to C/8, g to C/2,
phi and g max-pooled 2x2 (4x fewer keys), output 1x1 conv back to C, all spectrally
normalised and bias-free, and a learnable residual gain gamma initialised to 0 so the block
starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from biggan.models.spectral import SNConv2d
from biggan.models.twice import building_twice_differentiable


class _AttentionCore(torch.autograd.Function):
    """softmax(theta_t @ phi) @ g_t with the (b, n, m) attention map softmaxed in place.

    The same bmm and softmax kernels autograd would run, in the same order (bit for bit), but
    holding one map in forward instead of two (logits and probabilities) and two in backward
    instead of three: at 128 px a map is 4096 x 1024 floats per image, 268 MB for D's 16.
    In-place softmax kernels are used on CPU only, where they work row by row.

    Its backward is not itself differentiable (the saved map has no graph back to theta and
    phi), so it is `once_differentiable`: a second derivative through it raises. R1 (Section
    4.2) builds its D pass under `differentiable_twice()`, where `attention_core` uses plain ops.
    """

    @staticmethod
    def forward(ctx, theta_t: Tensor, phi: Tensor, g_t: Tensor) -> Tensor:
        beta = torch.bmm(theta_t, phi)  # (b, n, m) logits, then probabilities in the same buffer
        if beta.device.type == "cpu":
            torch._softmax(beta, -1, False, out=beta)
        else:
            beta = torch.softmax(beta, dim=-1)
        ctx.save_for_backward(theta_t, phi, g_t, beta)
        return torch.bmm(beta, g_t)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        theta_t, phi, g_t, beta = ctx.saved_tensors
        grad_out = grad_out.to(beta.dtype)
        grad_g = torch.bmm(beta.transpose(1, 2), grad_out)
        grad_beta = torch.bmm(grad_out, g_t.transpose(1, 2))
        if beta.device.type == "cpu":
            grad_logits = torch._softmax_backward_data(grad_beta, beta, -1, beta.dtype, grad_input=grad_beta)
        else:
            grad_logits = torch._softmax_backward_data(grad_beta, beta, -1, beta.dtype)
        grad_theta = torch.bmm(grad_logits, phi.transpose(1, 2))
        grad_phi = torch.bmm(theta_t.transpose(1, 2), grad_logits)
        return grad_theta, grad_phi, grad_g


def attention_core(theta_t: Tensor, phi: Tensor, g_t: Tensor) -> Tensor:
    """o^T = softmax(theta^T phi) g^T for theta_t (b, n, d), phi (b, d, m), g_t (b, m, c).

    BigGAN-PyTorch computes o = g beta^T. That is the same sums, but the gradient reaching
    the softmax is then a transposed view, and softmax's backward copied the whole map first
    (at 128 px a third of a training step); in this order it arrives contiguous.
    """
    needs_grad = torch.is_grad_enabled() and (theta_t.requires_grad or phi.requires_grad or g_t.requires_grad)
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    plain = tracing or (needs_grad and building_twice_differentiable())
    if needs_grad and not plain:
        return _AttentionCore.apply(theta_t, phi, g_t)
    if plain:
        # TorchScript tracing and torch.export: plain ops (a Python autograd.Function cannot be
        # traced into a program); R1's pass: plain ops, whose backward autograd can differentiate.
        return torch.bmm(torch.softmax(torch.bmm(theta_t, phi), dim=-1), g_t)
    return _inference_attention(theta_t, phi, g_t)


# Inference holds at most this many bytes of attention map at once. At 128 px G's and D's
# non-local blocks sit at 64 x 64 (Appendix B): one map is 4096 x 1024 floats per image, 1.6 GB
# for an evaluation batch of 100, and logits plus probabilities were 3.2 GB: the whole gap
# between `biggan evaluate`'s peak (4.7 GB) and the documented figure (docs/evaluation.md).
INFERENCE_MAP_BYTES = 64 * 2**20


def _inference_attention(theta_t: Tensor, phi: Tensor, g_t: Tensor) -> Tensor:
    """softmax(theta_t @ phi) @ g_t without a graph, a block of query rows at a time once the map
    is larger than INFERENCE_MAP_BYTES. Softmax is row-wise, so each block is exactly the rows of
    the whole (the matrix products may sum in another order: equal up to rounding). Maps that fit,
    which includes the demo's and the training step's no-grad fake pass at small scale, take one
    block: the very ops of the unblocked form."""
    b, n, m = theta_t.shape[0], theta_t.shape[1], phi.shape[2]
    rows = max(1, INFERENCE_MAP_BYTES // max(1, b * m * theta_t.element_size()))
    if rows >= n:
        beta = torch.bmm(theta_t, phi)
        return torch.bmm(_softmax_(beta), g_t)
    out = theta_t.new_empty(b, n, g_t.shape[2])
    for start in range(0, n, rows):
        beta = torch.bmm(theta_t[:, start:start + rows], phi)
        torch.bmm(_softmax_(beta), g_t, out=out[:, start:start + rows])
    return out


def _softmax_(beta: Tensor) -> Tensor:
    """Softmax over the last dim; in place on CPU, where the kernel works row by row."""
    if beta.device.type == "cpu":
        return torch._softmax(beta, -1, False, out=beta)
    return torch.softmax(beta, dim=-1)


class SelfAttention(nn.Module):
    def __init__(
        self,
        channels: int,  # C of the feature map
        num_svs: int,  # SN singular values tracked
        num_iterations: int,  # SN power iterations per forward
        sn_eps: float,  # Appendix C: 1e-4
        sn_enabled: bool = True,  # divide by sigma_0 (model.g_sn / model.d_sn); tracked either way
    ) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.channels = channels

        def conv(cin: int, cout: int) -> SNConv2d:
            return SNConv2d(cin, cout, kernel_size=1, padding=0, bias=False,
                            num_svs=num_svs, num_iterations=num_iterations, eps=sn_eps, enabled=sn_enabled)

        self.theta = conv(channels, channels // 8)
        self.phi = conv(channels, channels // 8)
        self.g = conv(channels, channels // 2)
        self.o = conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:  # cond unused: same call as blocks
        b, c, h, w = x.shape
        theta = self.theta(x).view(b, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(b, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(b, c // 2, h * w // 4)
        # o^T = softmax(theta^T phi) g^T, (b, hw, c/2): the channels_last layout of o, so the
        # 1x1 conv reads it without a copy (see attention_core for why not o = g beta^T).
        o_t = attention_core(theta.transpose(1, 2), phi, g.transpose(1, 2))
        o_t = o_t.view(b, h, w, c // 2).permute(0, 3, 1, 2)
        if not x.is_contiguous(memory_format=torch.channels_last):
            o_t = o_t.contiguous()  # keep NCHW models in NCHW
        return x + self.gamma * self.o(o_t)
