"""Second derivatives through the networks' custom pieces (R1 of Section 4.2 needs them), SN on
and off, and the dropout in front of D's head.

The two hand-written backwards (attention core, fused BN affine) are `once_differentiable`: a
second derivative through them raises. Inside `differentiable_twice()` they are plain ops, whose
second derivatives `gradgradcheck` checks here in float64 against finite differences.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from biggan.config import ModelConfig
from biggan.models import Discriminator, build_models, seeded
from biggan.models.attention import SelfAttention, attention_core
from biggan.models.batchnorm import ConditionalBatchNorm2d
from biggan.models.layers import HeadDropout, set_head_dropout
from biggan.models.spectral import SNConv2d, sn_layers
from biggan.models.twice import building_twice_differentiable, differentiable_twice

torch.set_num_threads(1)


def _attention_inputs():
    g = torch.Generator().manual_seed(0)
    shapes = ((2, 6, 3), (2, 3, 4), (2, 4, 5))  # theta_t (b, n, d), phi (b, d, m), g_t (b, m, c)
    return tuple(torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes)


def test_the_switch_is_scoped_to_its_block():
    assert not building_twice_differentiable()
    with differentiable_twice():
        assert building_twice_differentiable()
    assert not building_twice_differentiable()


def test_attention_core_second_derivatives_inside_the_switch():
    inputs = _attention_inputs()
    with differentiable_twice():
        assert gradcheck(attention_core, inputs)
        assert gradgradcheck(attention_core, inputs)


def test_attention_core_first_derivatives_of_the_fast_path():
    assert gradcheck(attention_core, _attention_inputs())  # the hand-written backward


def test_attention_core_refuses_a_second_derivative_outside_the_switch():
    theta_t, phi, g_t = _attention_inputs()
    out = attention_core(theta_t, phi, g_t)
    (grad,) = torch.autograd.grad(out.square().sum(), theta_t, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.square().sum().backward()


def _bn_inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    cond = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    bn = ConditionalBatchNorm2d(3, 5, torch.nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False),
                                eps=1e-4).double()
    return bn, x, cond


def test_fused_bn_affine_second_derivatives_inside_the_switch():
    bn, x, cond = _bn_inputs()
    with differentiable_twice():
        assert gradcheck(bn, (x, cond))
        assert gradgradcheck(bn, (x, cond))


def test_fused_bn_affine_first_derivatives_and_refusal_outside_the_switch():
    bn, x, cond = _bn_inputs()
    assert gradcheck(bn, (x, cond))  # the hand-written backward
    out = bn(x, cond)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.square().sum().backward()


def test_both_bn_paths_give_the_same_values_and_running_statistics():
    bn, x, cond = _bn_inputs()
    twin = ConditionalBatchNorm2d(3, 5, torch.nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False),
                                  eps=1e-4).double()
    twin.load_state_dict(bn.state_dict())
    fast = bn(x, cond)
    with differentiable_twice():
        plain = twin(x, cond)
    torch.testing.assert_close(fast, plain)
    torch.testing.assert_close(bn.bn.running_var, twin.bn.running_var)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    (g_plain,) = torch.autograd.grad(plain.square().sum(), x)
    torch.testing.assert_close(g_fast, g_plain)


def _converged_sn_conv(enabled: bool = True) -> SNConv2d:
    torch.manual_seed(0)
    conv = SNConv2d(3, 4, 3, padding=1, bias=True, num_svs=1, num_iterations=1, eps=1e-4, enabled=enabled).double()
    conv.train()
    for _ in range(500):  # the power iteration to convergence: its vectors are SN's constants
        conv.normalized_weight()
    return conv.eval()


def test_sn_mixed_second_derivatives_match_finite_differences():
    """What R1 needs of SN: how D's input gradient moves with the raw weight. SN treats the
    power-iteration vectors as constants (as BigGAN-PyTorch and torch's spectral_norm do), so
    d2/dW2 of W / sigma differs from a numerical derivative that also moves the vectors; that
    block never enters R1, whose weights reach D only through W / sigma. The mixed block does, and
    at converged vectors it is the true one: compared with central differences in float64."""
    conv = _converged_sn_conv()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    direction = torch.randn(conv.weight.shape, generator=g, dtype=torch.float64)

    def input_grad() -> torch.Tensor:
        (grad,) = torch.autograd.grad((conv(x) * probe).sum(), x, create_graph=True)
        return grad

    grad = input_grad()
    (mixed,) = torch.autograd.grad((grad * grad).sum(), conv.weight)  # d/dW of ||dD/dx||^2
    analytic = (mixed * direction).sum()
    eps = 1e-6
    with torch.no_grad():
        conv.weight += eps * direction
    plus = input_grad().square().sum()
    with torch.no_grad():
        conv.weight -= 2 * eps * direction
    minus = input_grad().square().sum()
    numeric = (plus - minus) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-9), (float(analytic), float(numeric))
    assert gradgradcheck(lambda inp: conv(inp), (x,))


def test_sn_off_uses_the_raw_weight_and_still_tracks_singular_values():
    on, off = _converged_sn_conv(True), _converged_sn_conv(False)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(off(x), F.conv2d(x, off.weight, off.bias, padding=1))
    sigma = torch.linalg.matrix_norm(on.weight.reshape(4, -1), 2)
    torch.testing.assert_close(on(x), F.conv2d(x, on.weight / sigma, on.bias, padding=1), rtol=1e-6, atol=1e-9)
    # The estimate converged with SN off too: the raw weight's top singular value is logged.
    torch.testing.assert_close(off.sv0[0], torch.linalg.matrix_norm(off.weight.reshape(4, -1), 2), rtol=1e-6,
                               atol=0.0)


def _tiny_cfg(**extra) -> ModelConfig:
    return ModelConfig(resolution=32, num_classes=4, ch=8, dim_z=16, shared_dim=8, **extra)


def test_sn_switches_reach_every_layer_of_each_network():
    G, D = build_models(_tiny_cfg(g_sn=False), seeded(0))
    assert {layer.sn_enabled for layer in sn_layers(G)} == {False}
    assert {layer.sn_enabled for layer in sn_layers(D)} == {True}
    G, D = build_models(_tiny_cfg(d_sn=False), seeded(0))
    assert {layer.sn_enabled for layer in sn_layers(G)} == {True}
    assert {layer.sn_enabled for layer in sn_layers(D)} == {False}
    assert any(isinstance(m, SelfAttention) for m in D.modules())  # attention's convs included


def test_head_dropout_is_off_in_evaluation_and_reproducible_in_training():
    D = Discriminator(_tiny_cfg())
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4)
    D.eval()
    reference = D(x, y)
    set_head_dropout(D, 0.5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(D(x, y), reference)  # evaluation: no dropout whatever the keep probability
    D.train()
    for layer in sn_layers(D):  # no vector updates: the two training passes below see the same weights
        layer.train(False)
    dropped = D(x, y)
    assert not torch.allclose(dropped, reference)
    set_head_dropout(D, 0.5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(D(x, y), dropped)  # the masks come from the generator alone
    head = next(m for m in D.modules() if isinstance(m, HeadDropout))
    h = torch.ones(1000, 8)
    head.keep, head.generator = 0.8, torch.Generator().manual_seed(0)
    out = head(h)
    assert set(out.unique().tolist()) <= {0.0, 1.25} and abs(float((out > 0).float().mean()) - 0.8) < 0.03


def test_a_network_without_head_dropout_refuses_a_keep_probability():
    with pytest.raises(ValueError, match="no dropout before its head"):
        set_head_dropout(torch.nn.Linear(2, 2), 0.9, None)
    set_head_dropout(torch.nn.Linear(2, 2), 1.0, None)  # off is always fine
