"""Section 4's conditioning terms of the training step: R1 (eq. 5, eager and lazy) against an
independent computation, eq. 4's clamp, the sigma_0 regulariser (no gradient through sigma_1),
dropout, L2, ortho and betas of D, SN off, and the per-layer norms of Appendix F."""

from __future__ import annotations

import pytest
import torch

from biggan.config import ModelConfig, apply_overrides
from biggan.config.train import SigmaConditioning
from biggan.models import Discriminator, Generator, build_models
from biggan.models.attention import SelfAttention
from biggan.models.layers import HeadDropout
from biggan.models.spectral import SNConv2d, SNLinear, set_sn_tracking, sn_layers
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.runs.tensorboard import stats_scalars
from biggan.train.context import LocalContext
from biggan.train.ema import EMA
from biggan.train.loop import LatentSampler, train
from biggan.train.losses import r1_penalty
from biggan.train.sigma import clamp_sigma_, sigma_reg_, top_singular_pairs
from biggan.train.state import build_training_state
from biggan.train.step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------- R1

def _converged_d() -> tuple[Discriminator, torch.Tensor, torch.Tensor]:
    """A small D in float64 whose SN vectors have converged (so SN's constant-vector gradient is
    the true one), in eval mode: the vectors no longer move and R1 is a function of the weights."""
    torch.manual_seed(0)
    D = Discriminator(ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=16, shared_dim=8)).double()
    assert any(isinstance(m, SelfAttention) for m in D.modules())  # the custom attention core is in the path
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 1, 3])
    with torch.no_grad():  # the attention's residual gain starts at 0: give it a say
        for m in D.modules():
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.7)
    set_sn_tracking(D, 300)
    D.train()
    with torch.no_grad():
        D(x, y)
    set_sn_tracking(D, 1)
    return D.eval(), x, y


def _first_order_r1(D, x, y) -> torch.Tensor:
    """E||grad_x D(x)||^2 from one ordinary backward (the fast custom backwards, no second order)."""
    real = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, y).sum(), real)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def test_r1_value_and_weight_gradient_match_an_independent_computation():
    D, x, y = _converged_d()
    logits, penalty = r1_penalty(D, x, y)
    torch.testing.assert_close(logits, D(x, y))
    # The value: the input gradient it squares, checked direction by direction with central
    # differences of D itself, then the penalty against that gradient.
    real = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, y).sum(), real)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = torch.randn(x.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            numeric = (D(x + 1e-6 * direction, y).sum() - D(x - 1e-6 * direction, y).sum()) / 2e-6
        torch.testing.assert_close((grad * direction).sum(), numeric, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(penalty, grad.square().sum(dim=(1, 2, 3)).mean())
    # The gradient with respect to D's weights (double backward through plain ops) against
    # central differences of the first-order penalty, along random directions in weight space.
    params = [p for p in D.parameters() if p.requires_grad]
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    unused = [name for (name, _p), gr in zip(D.named_parameters(), grads) if gr is None]
    assert unused == ["linear.bias"]  # the only weight D's input gradient does not depend on
    for _ in range(3):
        directions = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        analytic = sum((gr * d).sum() for gr, d in zip(grads, directions) if gr is not None)
        with torch.no_grad():
            for p, d in zip(params, directions):
                p += 1e-6 * d
        plus = _first_order_r1(D, x, y)
        with torch.no_grad():
            for p, d in zip(params, directions):
                p -= 2e-6 * d
        minus = _first_order_r1(D, x, y)
        with torch.no_grad():
            for p, d in zip(params, directions):
                p += 1e-6 * d
        torch.testing.assert_close(analytic, (plus - minus) / 2e-6, rtol=1e-5, atol=1e-8)


def _step(**overrides) -> TrainStep:
    cfg = apply_overrides(digits32(), {"model.num_classes": 10, "model.ch": 4, "model.dim_z": 16,
                                       "model.shared_dim": 8, "train.batch_size": 4, "train.precision": "fp32",
                                       **overrides})
    torch.manual_seed(0)
    G, D = build_models(cfg.model)
    G_ema = Generator(cfg.model)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999), foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.999), foreach=True)
    g = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.randint(10, (4,), generator=g)

    sampler = LatentSampler(G.dim_z, 10, "normal", torch.device("cpu"))
    return TrainStep(G, D, EMA(G, G_ema, 0.99, 0), opt_G, opt_D, batches(), sampler,
                     torch.Generator().manual_seed(1), cfg.train, 4, torch.device("cpu"))


def test_lazy_r1_falls_on_every_kth_d_step_counted_from_the_iteration():
    step = _step(**{"train.d_r1_gamma": 1.0, "train.d_r1_every": 3})
    due = [(it, j) for it in range(1, 7) for j in range(2) if step.r1_due(it, j)]
    assert due == [(2, 0), (3, 1), (5, 0), (6, 1)]  # D steps 3, 6, 9, 12 of the run
    assert not _step().r1_due(1, 0)  # gamma 0: never
    eager = _step(**{"train.d_r1_gamma": 1.0})
    assert all(eager.r1_due(it, j) for it in (1, 2) for j in (0, 1))
    metrics = eager.step(1, tick=True)
    assert metrics["loss/D_r1"] > 0 and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    lazy = _step(**{"train.d_r1_gamma": 1.0, "train.d_r1_every": 4})
    assert "loss/D_r1" not in lazy.step(1, tick=True) and "loss/D_r1" in lazy.step(2, tick=True)


def test_r1_changes_d_s_update_and_scales_with_its_interval():
    """The same D step with R1 off, eager and lazily scaled: three different updates of D."""
    after = {}
    for name, extra in (("off", {}), ("eager", {"train.d_r1_gamma": 10.0}),
                        ("lazy", {"train.d_r1_gamma": 10.0, "train.d_r1_every": 2})):
        step = _step(**extra)
        step.d_step(1, tick=False, index=1)  # D step 2: due for both eager and every-2
        after[name] = torch.cat([p.detach().flatten() for p in step.D.parameters()])
    assert not torch.equal(after["off"], after["eager"]) and not torch.equal(after["eager"], after["lazy"])


# ------------------------------------------------------------------------ sigma_0 of G (4.1)

def _layer_with_spectrum(spectrum: list[float], out: int = 6, inp: int = 9, conv: bool = False):
    g = torch.Generator().manual_seed(5)
    u, _ = torch.linalg.qr(torch.randn(out, out, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(inp, inp, generator=g, dtype=torch.float64))
    s = torch.zeros(out, inp, dtype=torch.float64)
    s[range(len(spectrum)), range(len(spectrum))] = torch.tensor(spectrum, dtype=torch.float64)
    w = (u @ s @ v.t()).float()
    if conv:
        layer = SNConv2d(1, out, 3, padding=1, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
        layer = layer.to(memory_format=torch.channels_last)
        with torch.no_grad():  # the matrix of a channels_last conv is its (out, kh, kw, in) view
            layer.weight.copy_(w.view(out, 3, 3, 1).permute(0, 3, 1, 2))
    else:
        layer = SNLinear(inp, out, bias=True, num_svs=3, num_iterations=1, eps=1e-4)
        with torch.no_grad():
            layer.weight.copy_(w)
    return layer


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "channels_last-conv"])
@pytest.mark.parametrize("target", ["fixed", "ratio"])
def test_the_clamp_sets_the_top_singular_value_and_leaves_the_rest(conv, target):
    spectrum = [5.0, 3.0, 2.0, 1.5, 1.0, 0.5]
    layer = _layer_with_spectrum(spectrum, conv=conv)
    cfg = SigmaConditioning(mode="clamp", target=target, value=4.0, ratio=1.2)
    assert clamp_sigma_([layer], cfg) == 1
    after = torch.linalg.svdvals(layer.weight_matrix().double())
    wanted = 4.0 if target == "fixed" else 1.2 * 3.0
    assert abs(float(torch.linalg.matrix_norm(layer.weight_matrix().double(), 2)) - wanted) < 1e-3
    torch.testing.assert_close(after[1:], torch.tensor(spectrum[1:], dtype=torch.float64), rtol=1e-4, atol=1e-5)
    assert clamp_sigma_([layer], cfg) == 0  # already at the target: nothing to do


def test_the_clamp_on_a_random_weight_and_below_the_target():
    torch.manual_seed(0)
    layer = SNLinear(40, 24, bias=False, num_svs=3, num_iterations=1, eps=1e-4)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(24, 40))
    before = torch.linalg.svdvals(layer.weight.double())
    clamp_sigma_([layer], SigmaConditioning(mode="clamp", value=float(before[0]) * 0.95))
    after = torch.linalg.svdvals(layer.weight.double())
    assert abs(float(after[0]) - float(before[0]) * 0.95) < 1e-3
    torch.testing.assert_close(after[1:], before[1:], rtol=1e-4, atol=1e-4)
    untouched = layer.weight.detach().clone()
    clamp_sigma_([layer], SigmaConditioning(mode="clamp", value=100.0))
    assert torch.equal(layer.weight, untouched)


def test_top_singular_pairs_converge_from_a_warm_start():
    torch.manual_seed(1)
    w = torch.randn(30, 50, dtype=torch.float64)
    sigmas, us, vs = top_singular_pairs(w, torch.randn(4, 30, dtype=torch.float64))
    exact = torch.linalg.svdvals(w)
    torch.testing.assert_close(sigmas[0], exact[0], rtol=1e-9, atol=0.0)
    torch.testing.assert_close(us[0] @ w, sigmas[0] * vs[0], rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("target", ["fixed", "ratio"])
def test_the_sigma_regulariser_pushes_sigma0_only(target):
    """Its gradient is 2 strength (sigma_0 - target) u_0 v_0^T: with the ratio target, nothing
    flows through sigma_1 (the paper's sg(sigma_1)), which would add -r (...) u_1 v_1^T."""
    layer = _layer_with_spectrum([5.0, 3.0, 2.0, 1.5, 1.0, 0.5])
    set_sn_tracking(layer, 200)
    layer.train()
    layer.normalized_weight()  # SN's vectors and sv0, sv1 converge
    cfg = SigmaConditioning(mode="reg", target=target, value=4.0, ratio=1.5, strength=0.1)
    sigma_reg_([layer], cfg)
    u, s, vh = torch.linalg.svd(layer.weight.double())
    sigma_target = 4.0 if target == "fixed" else 1.5 * 3.0
    expected = 2 * 0.1 * (5.0 - sigma_target) * torch.outer(u[:, 0], vh[0])
    torch.testing.assert_close(layer.weight.grad.double(), expected, rtol=1e-4, atol=1e-6)


def test_a_step_with_the_clamp_keeps_every_layer_of_g_at_or_below_the_target():
    step = _step(**{"train.g_sigma.mode": "clamp", "train.g_sigma.value": 0.9})
    metrics = step.step(1, tick=True)
    assert metrics["sigma/G_clamped_layers"] > 0
    for layer in sn_layers(step.G):  # eq. 4 moved each sigma_0 above 0.9 to 0.9 (sigma_1 may now be the top)
        spectrum = torch.linalg.svdvals(layer.weight_matrix().detach().double())
        assert float(spectrum[0]) < 0.9 + 1e-3 or float((spectrum - 0.9).abs().min()) < 1e-3


def test_ratio_regularisation_tracks_sigma1_at_every_step_and_reports_its_penalty():
    step = _step(**{"train.g_sigma.mode": "reg", "train.g_sigma.target": "ratio"})
    step.step(1, tick=False)  # orthogonal initialisation: every singular value is 1 until a step moves them
    layer = sn_layers(step.G)[0]
    before = layer.sv1.clone()
    metrics = step.step(2, tick=False)
    assert not torch.equal(layer.sv1, before)  # refreshed between ticks too (it is in the target)
    assert float(metrics["loss/G_sigma"]) >= 0
    d_layer = sn_layers(step.D)[0]
    before = d_layer.sv1.clone()
    step.step(3, tick=False)
    assert torch.equal(d_layer.sv1, before)  # D's extra vectors still wait for a tick


# ---------------------------------------------------------------------------- D (4.2)

def test_dropout_before_d_s_head_takes_the_step_s_keep_and_generator():
    step = _step(**{"train.d_dropout_keep": 0.7})
    head = next(m for m in step.D.modules() if isinstance(m, HeadDropout))
    assert head.keep == 0.7 and head.generator is step.latent_rng
    step.configure(step.cfg.model_copy(update={"d_dropout_keep": 1.0}))  # a remedy may turn it off
    assert head.keep == 1.0


def test_d_s_optimizer_takes_its_own_betas_and_weight_decay(tmp_path):
    cfg = apply_overrides(digits32(), {"model.num_classes": 10, "model.ch": 4, "model.dim_z": 16,
                                       "model.shared_dim": 8, "train.batch_size": 4, "train.d_betas": [0.5, 0.99],
                                       "train.d_weight_decay": 1e-3, "cluster.num_workers": 0,
                                       "train.precision": "fp32"})
    state = build_training_state(cfg, torch.device("cpu"), 1)
    d_group, g_group = state.opt_D.param_groups[0], state.opt_G.param_groups[0]
    assert d_group["betas"] == (0.5, 0.99) and d_group["weight_decay"] == 1e-3
    assert g_group["betas"] == (0.0, 0.999) and g_group["weight_decay"] == 0.0
    state.apply_optimizer_settings(apply_overrides(cfg, {"train.d_betas": None, "train.d_weight_decay": 0.0}))
    assert state.opt_D.param_groups[0]["betas"] == (0.0, 0.999) and state.opt_D.param_groups[0]["weight_decay"] == 0


def test_ortho_on_d_changes_d_s_update():
    plain, ortho = _step(), _step(**{"train.d_ortho_beta": 1e-2})
    plain.d_step(1, tick=False)
    ortho.d_step(1, tick=False)
    differ = [name for (name, a), b in zip(plain.D.named_parameters(), ortho.D.parameters()) if not torch.equal(a, b)]
    assert differ and all(name.endswith("weight") for name in differ)  # >= 2-d weights only


# ---------------------------------------------------------- a run: SN off, Appendix F's norms

def test_a_run_logs_frobenius_and_gradient_norms_per_layer_and_sn_off_still_tracks(tmp_path):
    cfg = apply_overrides(digits32(), {
        "run_root": str(tmp_path), "name": "norms", "cluster.num_workers": 0, "train.iterations": 4,
        "train.log_every": 2, "train.checkpoint_every": 4, "train.batch_size": 8, "model.ch": 8,
        "model.shared_dim": 8, "model.dim_z": 16, "model.num_classes": 10, "train.standing_stats_batches": 1,
        "model.d_sn": False, "train.d_r1_gamma": 1.0, "train.d_r1_every": 2, "train.d_dropout_keep": 0.8})

    def batches(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            images = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            yield images, torch.randint(10, (micro_batch,), generator=g)

    result = train(cfg, LocalContext(), real_batches_fn=batches)
    assert not result.collapsed
    store = RunStore(cfg.run_uri)
    last = store.stats.read()[-1]
    state = store.load_state(store.checkpoint("4"))
    G, D = Generator(cfg.model), Discriminator(cfg.model)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    for net, module in (("G", G), ("D", D)):
        for name, layer in module.named_modules():
            if isinstance(layer, (SNConv2d, SNLinear)):
                assert last[f"fro/{net}/{name}"] == pytest.approx(float(layer.weight.norm()), rel=1e-5)
                assert last[f"grad_norm/{net}/{name}"] > 0
    # SN off in D: its singular values are still tracked, and they are those of the raw weights.
    top = {k: v for k, v in last.items() if k.startswith("sv/D/") and k.endswith("/0")}
    assert top and all(v != 1.0 for v in top.values())
    assert "loss/D_r1" in last and (tmp_path / "norms" / "spectra.png").is_file()
    tags = stats_scalars(last)
    assert "fro_G/linear" in tags and "grad_norm_D/linear" in tags and "grad_norm/G" in tags


@pytest.mark.parametrize("name", ["digits32", "imagenet128", "imagenet256", "imagenet512", "jft256"])
def test_every_section_4_knob_is_off_in_the_presets(name):
    """The paper's BigGAN trains without them (Section 4 studies them as interventions)."""
    from biggan.presets import get_preset

    cfg = get_preset(name)
    t = cfg.train
    assert (t.d_r1_gamma, t.d_dropout_keep, t.d_weight_decay, t.d_ortho_beta, t.d_betas) == (0.0, 1.0, 0.0, 0.0, None)
    assert t.g_sigma.mode == "off" and t.collapse.action == "stop" and t.collapse.remedies == []
    assert cfg.model.g_sn and cfg.model.d_sn
