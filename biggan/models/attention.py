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
    if needs_grad and not (tracing or building_twice_differentiable()):
        return _AttentionCore.apply(theta_t, phi, g_t)
    # Inference, TorchScript tracing and torch.export: plain ops (no map is kept for a backward,
    # and a Python autograd.Function cannot be traced into a program); R1's pass: plain ops,
    # whose backward autograd can differentiate.
    return torch.bmm(torch.softmax(torch.bmm(theta_t, phi), dim=-1), g_t)


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
