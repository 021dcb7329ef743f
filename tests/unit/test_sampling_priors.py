"""Appendix E's ten latent priors: each draws what the paper defines, truncation acts only on a
prior's normal part, the variance priors follow training's progress and a trained G samples
N(0, I), every sampler (standing statistics, sheets, evaluation batches) takes every prior, and
the exported program maps its N(0, I) input onto the model's prior."""

from __future__ import annotations

import math

import pytest
import torch

from biggan.config import ModelConfig
from biggan.export import export_generator
from biggan.export.priors import from_normal
from biggan.models import Generator, seeded
from biggan.sampling.images import generated_batches
from biggan.sampling.latents import (
    PRIORS,
    SIGMA_HIGH,
    SIGMA_LOW,
    TRUNCATABLE,
    sample_latents,
)
from biggan.sampling.sheets import save_sample_sheet
from biggan.sampling.standing import standing_stats_
from biggan.train.loop import LatentSampler

N, DIM = 40_000, 8
SUPPORT = {"bernoulli": {0.0, 1.0}, "bernoulli_pm1": {-1.0, 1.0}, "categorical": {-1.0, 0.0, 1.0}}
# (mean, std) of one coordinate as a trained G samples it (progress None).
MOMENTS = {
    "normal": (0.0, 1.0), "uniform": (0.0, 1 / math.sqrt(3)), "bernoulli": (0.5, 0.5),
    "censored_normal": (1 / math.sqrt(2 * math.pi), math.sqrt(0.5 - 1 / (2 * math.pi))),
    "bernoulli_pm1": (0.0, 1.0), "categorical": (0.0, math.sqrt(2 / 3)),
    "normal_times_bernoulli": (0.0, math.sqrt(0.5)), "variance_annealing": (0.0, 1.0),
    "per_sample_variance": (0.0, 1.0),
}


def _draw(prior: str, truncation=None, progress=None, seed: int = 0, n: int = N) -> torch.Tensor:
    return sample_latents(n, DIM, truncation, prior, torch.Generator().manual_seed(seed), "cpu", progress=progress)


def test_the_config_and_the_sampler_know_the_same_ten_priors():
    assert len(PRIORS) == 10 and len(set(PRIORS)) == 10
    for prior in PRIORS:
        assert ModelConfig(latent=prior).latent == prior
    with pytest.raises(ValueError, match="prior"):
        sample_latents(2, 2, None, "gaussian", torch.Generator(), "cpu")


@pytest.mark.parametrize("prior", PRIORS)
def test_each_prior_draws_the_papers_distribution(prior):
    z = _draw(prior)
    assert z.shape == (N, DIM) and z.dtype == torch.float32
    assert torch.equal(z, _draw(prior))  # a function of the generator's seed
    if prior in SUPPORT:
        assert set(z.unique().tolist()) == SUPPORT[prior]
        for value in SUPPORT[prior]:  # equal probabilities
            assert (z == value).float().mean().item() == pytest.approx(1 / len(SUPPORT[prior]), abs=0.01)
    if prior == "uniform":
        assert z.min() >= -1 and z.max() <= 1
    if prior == "censored_normal":
        assert z.min() == 0 and (z == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    if prior == "normal_times_bernoulli":
        assert (z == 0).float().mean().item() == pytest.approx(0.5, abs=0.01) and z.min() < -1
    if prior == "normal_concat_bernoulli":
        normal, bits = z[:, : DIM // 2], z[:, DIM // 2:]
        assert set(bits.unique().tolist()) == {0.0, 1.0} and normal.std().item() == pytest.approx(1.0, abs=0.02)
        return
    mean, std = MOMENTS[prior]
    assert z.mean().item() == pytest.approx(mean, abs=0.02) and z.std().item() == pytest.approx(std, abs=0.02)


@pytest.mark.parametrize("prior", PRIORS)
def test_truncation_acts_on_the_normal_part_only(prior):
    t = 0.5
    z = _draw(prior, truncation=t, n=5000)
    if prior not in TRUNCATABLE:  # bounded or discrete: the threshold means nothing and changes nothing
        assert torch.equal(z, _draw(prior, n=5000))
        return
    normal = z[:, : DIM - DIM // 2] if prior == "normal_concat_bernoulli" else z
    assert normal.abs().max().item() <= t
    assert normal.abs().max().item() > 0.45  # resampled within the threshold, not squashed towards zero


def test_variance_annealing_goes_from_sigma_2_to_1_over_training():
    stds = [_draw("variance_annealing", progress=p).std().item() for p in (0.0, 0.5, 1.0)]
    assert stds == pytest.approx([2.0, 1.5, 1.0], abs=0.03)
    assert _draw("variance_annealing").std().item() == pytest.approx(1.0, abs=0.02)  # a trained G: the end


def test_per_sample_variance_draws_one_sigma_per_sample_in_training():
    z = _draw("per_sample_variance", progress=0.3, n=20_000, seed=1).double()
    # Every coordinate of a sample shares its sigma: E[z^2 | sigma] = sigma^2, sigma ~ U[0.5, 1].
    second = (SIGMA_HIGH**3 - SIGMA_LOW**3) / (3 * (SIGMA_HIGH - SIGMA_LOW))
    assert z.pow(2).mean().item() == pytest.approx(second, rel=0.03)
    # One sigma per sample: at 256 dims a sample's mean square is its sigma^2 up to ~0.09 (std), so the
    # samples spread over [0.25, 1]; with one sigma for the whole batch they would not.
    wide = sample_latents(4000, 256, None, "per_sample_variance", torch.Generator().manual_seed(2), "cpu",
                          progress=0.3).pow(2).mean(dim=1)
    assert wide.min().item() < 0.35 and wide.max().item() > 0.9 and wide.std().item() > 0.15
    plain = sample_latents(4000, 256, None, "per_sample_variance", torch.Generator().manual_seed(2), "cpu")
    assert plain.pow(2).mean(dim=1).std().item() < 0.12  # a trained G samples N(0, I)
    assert _draw("per_sample_variance").std().item() == pytest.approx(1.0, abs=0.02)


def test_the_training_sampler_passes_progress():
    sampler = LatentSampler(DIM, 10, "variance_annealing", torch.device("cpu"))
    sampler.progress = 0.0
    z, y = sampler(N, torch.Generator().manual_seed(0))
    assert z.std().item() == pytest.approx(2.0, abs=0.03) and y.max() < 10
    sampler.progress = 1.0
    assert sampler(N, torch.Generator().manual_seed(0))[0].std().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("prior", PRIORS)
def test_the_export_map_has_the_samplers_distribution(prior):
    gen = torch.Generator().manual_seed(3)
    mapped = from_normal(torch.randn(N, DIM, generator=gen), prior)
    drawn = _draw(prior, seed=4)
    assert torch.equal(mapped[:10], from_normal(torch.randn(N, DIM, generator=torch.Generator().manual_seed(3)),
                                                prior)[:10])  # deterministic in z
    for column in (0, DIM - 1):  # both halves of the concatenated prior
        a, b = mapped[:, column].double().sort().values, drawn[:, column].double().sort().values
        grid = torch.cat([a, b]).sort().values
        ks = (torch.searchsorted(a, grid, right=True) - torch.searchsorted(b, grid, right=True)).abs().max() / N
        assert ks.item() < 1.95 * math.sqrt(2 / N), (prior, column)
    if prior in TRUNCATABLE:
        truncated = from_normal(torch.randn(N, DIM, generator=gen), prior, 0.5)
        normal = truncated[:, : DIM - DIM // 2] if prior == "normal_concat_bernoulli" else truncated
        assert normal.abs().max().item() <= 0.5


def _tiny(prior: str) -> tuple[Generator, ModelConfig]:
    cfg = ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=20, shared_dim=8, d_attention=None, latent=prior)
    from biggan.models import build_models

    G, _D = build_models(cfg, seeded(0))
    return G, cfg


@pytest.mark.parametrize("prior", PRIORS)
def test_every_sampler_takes_every_prior(prior, tmp_path):
    torch.set_num_threads(1)
    G, cfg = _tiny(prior)
    standing_stats_(G, cfg.num_classes, 2, 8, 0.5, "cpu", prior=prior, seed=0)
    G.eval()
    sheet = save_sample_sheet(G, tmp_path / "sheet.png", [0, 1], 2, 0.5, 0, prior=prior)
    images = torch.cat([x for x, _y in generated_batches(G, 6, cfg.num_classes, None, prior, 3, 0)])
    assert sheet.exists() and images.shape == (6, 3, 32, 32) and images.dtype == torch.uint8


def test_the_exported_program_samples_the_models_prior(tmp_path):
    prior = "normal_times_bernoulli"
    G, cfg = _tiny(prior)
    G.eval()
    description = export_generator(G, cfg, tmp_path, standing_truncation=None)
    assert "normal_times_bernoulli" in description["program"]["latent"]
    program = torch.export.load(tmp_path / description["program"]["file"]).module()
    z, y = torch.randn(4, G.dim_z, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        for t in (0.5, math.inf):
            expected = G(from_normal(z, prior, t), y)
            assert float((program(z, y, torch.tensor(t)) - expected).abs().max()) <= 1e-5
        assert float((G(from_normal(z, prior), y) - G(z, y)).abs().max()) > 1e-3  # the map matters
