"""Spectral normalization: tracked top-3 singular values match torch.linalg.svdvals."""

from __future__ import annotations

import torch

from biggan.config import ModelConfig
from biggan.models import Discriminator, Generator
from biggan.models.spectral import (
    SNConv2d,
    SNLinear,
    extra_singular_values,
    set_sn_tracking,
    singular_values,
    sn_layers,
)

torch.set_num_threads(1)


def _run_power_iterations(layer, x, steps: int) -> None:
    layer.train()
    with torch.no_grad():
        for _ in range(steps):
            layer(x)


def test_tracked_svs_match_svdvals_linear():
    torch.manual_seed(0)
    layer = SNLinear(24, 16, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    _run_power_iterations(layer, torch.randn(2, 24), 300)
    tracked = torch.tensor(singular_values(layer)[""])
    exact = torch.linalg.svdvals(layer.weight.detach())[:3]
    torch.testing.assert_close(tracked, exact, rtol=1e-3, atol=1e-4)


def test_tracked_svs_match_svdvals_conv():
    torch.manual_seed(1)
    layer = SNConv2d(6, 12, 3, padding=1, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    _run_power_iterations(layer, torch.randn(1, 6, 4, 4), 400)
    tracked = torch.tensor(singular_values(layer)[""])
    exact = torch.linalg.svdvals(layer.weight.detach().reshape(12, -1))[:3]
    torch.testing.assert_close(tracked, exact, rtol=1e-3, atol=1e-4)


def test_normalized_weight_has_unit_spectral_norm():
    torch.manual_seed(2)
    layer = SNLinear(10, 8, bias=False, num_svs=1, num_iterations=1, eps=1e-4)
    _run_power_iterations(layer, torch.randn(1, 10), 200)
    layer.eval()
    w = layer.normalized_weight().detach()
    torch.testing.assert_close(torch.linalg.svdvals(w)[0], torch.tensor(1.0), rtol=1e-3, atol=1e-3)


def test_svdvals_of_normalized_weight_are_tracked_ratios():
    """The normalised weight W / sigma0 has singular values sv_i / sv0: top one 1, next two as tracked."""
    torch.manual_seed(3)
    layer = SNConv2d(8, 16, 3, padding=1, bias=False, num_svs=3, num_iterations=1, eps=1e-4)
    _run_power_iterations(layer, torch.randn(1, 8, 4, 4), 400)
    layer.eval()
    tracked = torch.tensor(singular_values(layer)[""])
    exact = torch.linalg.svdvals(layer.normalized_weight().detach().reshape(16, -1))[:3]
    torch.testing.assert_close(exact, tracked / tracked[0], rtol=1e-3, atol=1e-4)


def test_bf16_autocast_keeps_sigma_fp32():
    layer = SNLinear(12, 8, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 12))
    assert out.dtype == torch.bfloat16
    assert all(sv.dtype == torch.float32 for sv in layer.sn_svs)
    assert all(u.dtype == torch.float32 for u in layer.sn_us)


def test_eval_mode_does_not_move_u_or_sv():
    layer = SNLinear(5, 4, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    layer.eval()
    before = [b.clone() for b in layer.buffers()]
    layer(torch.randn(2, 5))
    assert all(torch.equal(a, b) for a, b in zip(before, layer.buffers()))


def test_every_conv_and_linear_is_spectrally_normalized_and_reported():
    cfg = ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=16, shared_dim=8, sn_tracked_svs=3)
    G, D = Generator(cfg), Discriminator(cfg)
    for net in (G, D):
        for name, module in net.named_modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                assert isinstance(module, (SNConv2d, SNLinear)), name
    svs = singular_values(D)
    assert "embed" in svs and "linear" in svs and all(len(v) == 3 for v in svs.values())
    # SN eps is the configured one (Appendix C: 1e-4)
    assert all(m.sn_eps == 1e-4 for m in D.modules() if hasattr(m, "sn_eps"))


def test_set_sn_tracking_changes_iterations():
    D = Discriminator(ModelConfig(resolution=32, num_classes=4, ch=4))
    set_sn_tracking(D, 5)
    assert {m.sn_num_iterations for m in D.modules() if hasattr(m, "sn_num_iterations")} == {5}


# --------------------------------------------------------------------------- extra vectors at ticks only


def _reference_power_iteration(weight, us, eps):
    """The power iteration as it was (BigGAN-PyTorch's): all k vectors, F.normalize, W v^T twice."""
    import torch.nn.functional as F

    new_us, new_vs, svs = [], [], []
    for i, u in enumerate(us):
        with torch.no_grad():
            v = u @ weight
            for y in new_vs:
                v = v - (v @ y.t()) * y
            v = F.normalize(v, eps=eps)
            new_vs.append(v)
            w = v @ weight.t()
            for y in new_us:
                w = w - (w @ y.t()) * y
            u_next = F.normalize(w, eps=eps)
            new_us.append(u_next)
            u.copy_(u_next)
        with torch.enable_grad() if i == 0 else torch.no_grad():
            svs.append(((v @ weight.t()) @ u_next.t()).squeeze())
    return svs


def test_sigma_u0_and_gradient_bit_identical_to_tracking_all_vectors():
    """Between ticks only u0 moves; sigma_0, u0, W / sigma_0 and its gradient are bit for bit
    those of the previous all-k power iteration, whatever the ticks."""
    import copy

    torch.manual_seed(4)
    layer = SNConv2d(8, 16, 3, padding=1, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    ref = copy.deepcopy(layer)
    for step in range(30):
        with extra_singular_values([layer], enabled=step % 7 == 0):
            w_new = layer.normalized_weight()
        svs = _reference_power_iteration(ref.weight.reshape(16, -1), ref.sn_us, 1e-4)
        w_ref = ref.weight / svs[0].clamp_min(1e-4)
        probe = torch.randn_like(w_new)
        g_new, = torch.autograd.grad((w_new * probe).sum(), layer.weight)
        g_ref, = torch.autograd.grad((w_ref * probe).sum(), ref.weight)
        assert torch.equal(w_new, w_ref) and torch.equal(g_new, g_ref) and torch.equal(layer.u0, ref.u0), step
        assert torch.equal(layer.sv0, svs[0].reshape(1).detach())
        with torch.no_grad():  # move the weights so the iteration has something to track
            layer.weight.add_(0.05 * g_new)
            ref.weight.add_(0.05 * g_ref)


def test_extra_vectors_move_only_inside_an_enabled_block():
    layer = SNLinear(12, 10, bias=False, num_svs=3, num_iterations=1, eps=1e-4)
    layer.train()
    before = [b.clone() for b in (layer.u1, layer.u2, layer.sv1, layer.sv2)]
    with extra_singular_values(sn_layers(layer), enabled=False):
        layer(torch.randn(2, 12))
        assert not layer.sn_track_extra
    assert all(torch.equal(a, b) for a, b in zip(before, (layer.u1, layer.u2, layer.sv1, layer.sv2)))
    assert layer.sn_track_extra  # restored
    with extra_singular_values(sn_layers(layer), enabled=True):
        layer(torch.randn(2, 12))
    assert not torch.equal(before[0], layer.u1) and not torch.equal(before[2], layer.sv1)


def test_sigma_matches_matrix_norm_when_only_the_first_vector_is_tracked():
    """The normalising singular value converges to the spectral norm (torch.linalg.matrix_norm)
    with the extra vectors switched off, as between logging ticks."""
    torch.manual_seed(5)
    conv = SNConv2d(6, 12, 3, padding=1, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    for layer, shape in ((conv, (1, 6, 4, 4)),
                         (SNLinear(40, 24, bias=True, num_svs=3, num_iterations=1, eps=1e-4), (2, 40))):
        with extra_singular_values(sn_layers(layer), enabled=False):
            _run_power_iterations(layer, torch.randn(*shape), 400)
        exact = torch.linalg.matrix_norm(layer.weight.detach().reshape(layer.weight.shape[0], -1), ord=2)
        torch.testing.assert_close(layer.sv0[0], exact, rtol=1e-4, atol=1e-5)


def test_channels_last_conv_normalises_like_nchw_without_copying_its_weight():
    """A channels_last weight's matrix is a column permutation of the NCHW one (a view, no
    copy per forward): same sigma and u up to rounding, W / sigma equal."""
    import copy

    torch.manual_seed(6)
    nchw = SNConv2d(8, 16, 3, padding=1, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    assert nhwc.weight_matrix().data_ptr() == nhwc.weight.data_ptr()
    for _ in range(20):
        w_a, w_b = nchw.normalized_weight(), nhwc.normalized_weight()
    torch.testing.assert_close(nhwc.u0, nchw.u0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(nhwc.sv0, nchw.sv0, rtol=1e-6, atol=0)
    torch.testing.assert_close(w_b, w_a, rtol=1e-6, atol=1e-7)
