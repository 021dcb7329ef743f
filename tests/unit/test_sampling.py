"""Truncation by resampling, priors, standing statistics, generation, sheets."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from biggan.config import ModelConfig
from biggan.models import Generator
from biggan.sampling.latents import sample_latents, truncated_normal
from biggan.sampling.sheets import save_interpolations, save_sample_sheet
from biggan.sampling.standing import generate, standing_stats_

torch.set_num_threads(1)


@pytest.mark.parametrize("threshold", [2.0, 1.0, 0.5, 0.04])
def test_truncated_normal_within_threshold(threshold):
    g = torch.Generator().manual_seed(0)
    z = truncated_normal((2000, 16), threshold, generator=g)
    assert z.shape == (2000, 16)
    assert z.abs().max().item() <= threshold


def test_truncation_resamples_not_clips_or_scales():
    """Resampling gives the truncated normal's shape: no mass piled at the bound (clipping) and
    the std of N(0,1) truncated at t (scaling would give t/max|z|-scaled gaussian moments)."""
    t = 1.0
    z = truncated_normal((200_000,), t, generator=torch.Generator().manual_seed(1))
    assert (z.abs() == t).sum().item() == 0
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(t / math.sqrt(2))
    expected_std = math.sqrt(1 - 2 * t * phi / mass)  # variance of the truncated standard normal
    assert z.std().item() == pytest.approx(expected_std, abs=0.005)
    # density near the edge is that of N(0,1): fraction in [0.9, 1] vs [0, 0.1]
    edge = ((z.abs() > 0.9) & (z.abs() <= 1.0)).float().mean().item()
    centre = (z.abs() <= 0.1).float().mean().item()
    assert edge / centre == pytest.approx(math.exp(-0.95**2 / 2) / math.exp(-0.05**2 / 2), rel=0.05)


def test_truncated_normal_without_threshold_is_plain_and_seeded():
    a = truncated_normal((5, 3), None, generator=torch.Generator().manual_seed(3))
    b = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        truncated_normal((2,), 0.0)


def test_priors():
    g = torch.Generator().manual_seed(0)
    bern = sample_latents(100, 8, None, "bernoulli", g, "cpu")
    assert set(bern.unique().tolist()) <= {0.0, 1.0}
    cens = sample_latents(100, 8, 1.5, "censored_normal", g, "cpu")
    assert cens.min() >= 0 and cens.max() <= 1.5
    with pytest.raises(ValueError, match="prior"):
        sample_latents(2, 2, None, "gaussian", g, "cpu")


def _tiny_g() -> Generator:
    torch.manual_seed(0)
    return Generator(ModelConfig(resolution=32, num_classes=5, ch=8, dim_z=32, shared_dim=16))


def test_standing_stats_make_samples_batch_invariant():
    """Appendix C.1: after standing stats one image drawn alone equals it drawn in a batch of 64."""
    G = _tiny_g()
    standing_stats_(G, num_classes=5, batches=4, batch_size=32, truncation=1.0, device="cpu")
    assert not G.training
    g = torch.Generator().manual_seed(7)
    z = sample_latents(64, G.dim_z, 1.0, "normal", g, "cpu")
    y = torch.randint(0, 5, (64,), generator=g)
    batch = generate(G, z, y)
    alone = generate(G, z[10:11], y[10:11])
    torch.testing.assert_close(alone[0], batch[10], atol=1e-5, rtol=1e-5)


def test_standing_stats_are_cumulative_average_and_restore_momentum():
    G = _tiny_g()
    bn = G.output_bn.bn
    standing_stats_(G, num_classes=5, batches=3, batch_size=8, truncation=None, device="cpu")
    assert bn.num_batches_tracked.item() == 3 and bn.momentum == 0.1
    # SN vectors untouched (only BN layers ran in training mode)
    u_before = G.linear.u0.clone()
    standing_stats_(G, num_classes=5, batches=2, batch_size=8, truncation=None, device="cpu")
    assert torch.equal(u_before, G.linear.u0)


def test_generate_restores_mode_and_has_no_grad():
    G = _tiny_g()
    G.train()
    out = generate(G, torch.randn(2, G.dim_z), torch.tensor([0, 1]))
    assert G.training and not out.requires_grad


def test_sample_sheet_and_interpolations(tmp_path):
    G = _tiny_g()
    standing_stats_(G, num_classes=5, batches=2, batch_size=8, truncation=None, device="cpu")
    sheet = save_sample_sheet(G, tmp_path / "sheet.png", classes=[0, 1, 2], per_class=4, truncation=0.5, seed=0)
    with Image.open(sheet.local_path()) as img:
        assert img.size == (4 * 34 + 2, 3 * 34 + 2)  # 32 px + 2 px padding grid
    for mode in ("z", "class"):
        path = save_interpolations(G, tmp_path / f"interp_{mode}.png", classes=[0, 3], steps=5,
                                   truncation=1.0, seed=0, mode=mode)
        with Image.open(path.local_path()) as img:
            assert img.size == (5 * 34 + 2, 2 * 34 + 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interp_class.png", "interp_z.png", "sheet.png"]


def test_class_interpolation_endpoints_are_the_classes():
    G = _tiny_g()
    G.eval()
    z = torch.randn(1, G.dim_z)
    with torch.no_grad():
        direct = G(z, torch.tensor([3]))
        via = G.forward_conditioned(z, G.class_condition(torch.tensor([3])))
    torch.testing.assert_close(direct, via)


def test_checkpoint_generator_in_channels_last_samples_as_nchw():
    """Evaluation builds G in the run's channels_last layout (8x faster upsampling on a CPU): the
    samples are those of the NCHW generator up to rounding."""
    from biggan.runs.networks import generator_from_state

    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32, num_classes=5, ch=8, shared_dim=16)
    G = Generator(cfg)
    state = {"G_ema": G.state_dict(),
             "config": {"data": {"train_shards": "shards/train"}, "model": cfg.model_dump(mode="json")}}
    nchw = generator_from_state(state)
    nhwc = generator_from_state(state, channels_last=True)
    conv = next(m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    z, y = torch.randn(4, G.dim_z), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(nhwc(z, y), nchw(z, y), rtol=1e-5, atol=1e-5)
