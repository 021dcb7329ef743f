"""Hinge losses, modified orthogonal regularization (eq. 3) and EMA."""

from __future__ import annotations

import pytest
import torch

from biggan.config import ModelConfig
from biggan.models import Generator
from biggan.train.ema import EMA
from biggan.train.losses import hinge_d, hinge_g
from biggan.train.ortho import ortho_penalty, ortho_reg_, regularized_parameters

torch.set_num_threads(1)


def test_hinge_d_values():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0])  # relu(1 + f) = 0, 1
    total, lr, lf = hinge_d(real, fake)
    assert lr.item() == pytest.approx(2.5 / 3)
    assert lf.item() == pytest.approx(0.5)
    assert total.item() == pytest.approx(2.5 / 3 + 0.5)


def test_hinge_g_value():
    assert hinge_g(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_ortho_penalty_zero_for_orthogonal_and_ignores_diagonal():
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    assert ortho_penalty(q).item() == pytest.approx(0.0, abs=1e-10)
    # Rows of different norms but mutually orthogonal: diagonal of W W^T is not penalised.
    assert ortho_penalty(torch.diag(torch.tensor([1.0, 5.0, 0.1]))).item() == 0.0
    # conv-shaped orthogonal filters
    w = q[:4].reshape(4, 1, 6, 1)
    assert ortho_penalty(w).item() == pytest.approx(0.0, abs=1e-10)


def test_ortho_penalty_known_value():
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # W W^T = [[2, 1], [1, 1]]: off-diagonal 1 and 1
    assert ortho_penalty(w).item() == pytest.approx(2.0)
    assert ortho_penalty(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).item() > 0


def test_ortho_reg_adds_exact_gradient_of_eq3():
    torch.manual_seed(0)
    G = Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8))
    beta = 1e-2
    params = regularized_parameters(G)
    for p in G.parameters():
        p.grad = torch.zeros_like(p)
    with torch.no_grad():  # make the weights non-orthogonal so the gradient is not ~0
        for p in params:
            p.add_(0.1 * torch.randn_like(p))
    ortho_reg_(G, beta)
    for p in params[:5]:
        leaf = p.detach().clone().requires_grad_(True)
        (beta * ortho_penalty(leaf)).backward()
        torch.testing.assert_close(p.grad, leaf.grad, rtol=1e-4, atol=1e-7)


def test_ortho_reg_skips_shared_embedding_and_vectors():
    G = Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8))
    ids = {id(p) for p in regularized_parameters(G)}
    assert id(G.shared.weight) not in ids
    assert id(G.output_bn.gain) not in ids  # 1-d
    assert id(G.blocks[0][0].conv1.weight) in ids
    for p in G.parameters():
        p.grad = torch.zeros_like(p)
    ortho_reg_(G, 1.0)
    assert torch.count_nonzero(G.shared.weight.grad) == 0


def _tiny_g() -> Generator:
    return Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8))


def test_ema_copies_before_start_and_averages_after():
    torch.manual_seed(0)
    src, tgt = _tiny_g(), _tiny_g()
    ema = EMA(src, tgt, decay=0.9, start=10)
    w_src, w_tgt = src.linear.weight, tgt.linear.weight
    assert torch.equal(w_src, w_tgt)  # starts as a copy
    with torch.no_grad():
        w_src.add_(1.0)
    ema.update(iteration=5)  # before start: copy
    assert torch.equal(w_tgt, w_src)
    before = w_tgt.clone()
    with torch.no_grad():
        w_src.add_(1.0)
    ema.update(iteration=10)
    torch.testing.assert_close(w_tgt, 0.9 * before + 0.1 * w_src)


def test_ema_copies_buffers_instead_of_averaging():
    torch.manual_seed(0)
    src, tgt = _tiny_g(), _tiny_g()
    ema = EMA(src, tgt, decay=0.99, start=0)
    src.train()
    src(torch.randn(4, src.dim_z), torch.tensor([0, 1, 2, 0]))  # moves BN stats and SN u/sv
    ema.update(iteration=100)
    for (name, b_src), (_, b_tgt) in zip(src.named_buffers(), tgt.named_buffers()):
        assert torch.equal(b_src, b_tgt), name
    assert not any(p.requires_grad for p in tgt.parameters())


def test_ema_rejects_mismatched_models():
    a = _tiny_g()
    b = Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8, g_attention=None))
    with pytest.raises(ValueError, match="differ"):
        EMA(a, b, decay=0.9, start=0)


# --------------------------------------------------------------------------- ortho: tall form, EMA foreach


def _masked_form(matrix: torch.Tensor) -> torch.Tensor:
    """(W W^T (.) (1 - I)) W, literally (the rows x rows form eq. 3's gradient was computed in)."""
    gram = matrix @ matrix.t()
    return (gram * (1.0 - torch.eye(gram.shape[0], dtype=gram.dtype))) @ matrix


@pytest.mark.parametrize("shape", [(300, 7), (64, 63), (7, 300), (20, 20), (1, 5), (5, 1)])
def test_ortho_direction_equals_masked_gram_form(shape):
    """Tall W: W (W^T W) - diag(||w_i||^2) W; wide/square: the W W^T form, bit for bit."""
    from biggan.train.ortho import ortho_direction

    torch.manual_seed(shape[0] * 1000 + shape[1])
    w = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(ortho_direction(w), _masked_form(w), rtol=1e-10, atol=1e-10)
    w32 = w.float()
    if shape[0] <= shape[1]:
        assert torch.equal(ortho_direction(w32), _masked_form(w32))
    else:  # a different summation: fp32 rounding, relative to the terms' size
        scale = (w32.abs() @ (w32.abs().t() @ w32.abs())).max()
        assert (ortho_direction(w32) - _masked_form(w32)).abs().max() <= 1e-6 * scale


def test_ortho_direction_of_a_tall_matrix_allocates_nothing_rows_by_rows():
    """G's first linear at 128 px ch 96 is 24576 x 20: its W W^T alone would be 2.4 GB."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from biggan.train.ortho import ortho_direction

    largest = {"numel": 0}

    class Sizes(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                largest["numel"] = max(largest["numel"], out.numel())
            return out

    w = torch.randn(24576, 20)
    with Sizes():
        ortho_direction(w)
    assert largest["numel"] <= w.numel()


def test_ema_foreach_update_equals_per_tensor_lerp_bit_for_bit():
    torch.manual_seed(1)
    src, tgt, ref = _tiny_g(), _tiny_g(), _tiny_g()
    ema = EMA(src, tgt, decay=0.9, start=0)
    ref.load_state_dict(tgt.state_dict())
    for iteration in range(3):
        with torch.no_grad():
            for p in src.parameters():
                p.add_(torch.randn_like(p))
            for b in src.buffers():
                b.add_(1)
        ema.update(iteration)
        with torch.no_grad():
            for (_, s), (_, r) in zip(src.named_parameters(), ref.named_parameters()):
                r.lerp_(s, 1.0 - 0.9)
            for (_, s), (_, r) in zip(src.named_buffers(), ref.named_buffers()):
                r.copy_(s)
    for (name, a), (_, b) in zip(tgt.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), name
