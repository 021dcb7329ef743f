"""BigGAN-deep's G and D (model.arch=deep, Appendix B): layout, blocks, and the machinery BigGAN's
nets have (seeded init, cross-replica BN, SN tracking, ortho reg, EMA, standing statistics,
channels_last + bf16, `biggan params --arch deep`). Their equality with BigGAN-PyTorch's own code
is tests/unit/test_interop_deep.py."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from biggan.config import ModelConfig, apply_overrides
from biggan.models import (
    DeepDiscriminator,
    DeepGenerator,
    Discriminator,
    Generator,
    build_models,
    discriminator_class,
    generator_class,
    seeded,
)
from biggan.models.attention import SelfAttention
from biggan.models.batchnorm import CrossReplicaReducer, LocalReducer, batchnorms, set_bn_reducer
from biggan.models.deep_blocks import DeepDBlock, DeepGBlock
from biggan.models.layers import SNFactory
from biggan.models.spectral import singular_values, sn_layers
from biggan.presets import digits32_deep

torch.set_num_threads(1)


def _cfg(resolution: int = 32, **extra) -> ModelConfig:
    return ModelConfig(arch="deep", resolution=resolution, num_classes=5, ch=4, dim_z=16, shared_dim=8, **extra)


@pytest.mark.parametrize("resolution,g_blocks,d_stages,attention", [
    (32, 6, 3, 16), (64, 8, 4, 32), (128, 10, 5, 64), (256, 12, 6, 64), (512, 14, 7, 64)])
def test_two_blocks_per_resolution_and_attention_at_64(resolution, g_blocks, d_stages, attention):
    cfg = _cfg(resolution)
    with torch.device("meta"):
        G, D = DeepGenerator(cfg), DeepDiscriminator(cfg)
    assert len(G.blocks) == g_blocks and len(D.blocks) == d_stages
    assert all(len([m for m in stage if isinstance(m, DeepDBlock)]) == 2 for stage in D.blocks)
    g_attn = [i for i, stage in enumerate(G.blocks) if any(isinstance(m, SelfAttention) for m in stage)]
    d_attn = [i for i, stage in enumerate(D.blocks) if isinstance(stage[-1], SelfAttention)]
    assert len(g_attn) == 1 and len(d_attn) == 1
    assert g_attn[0] % 2 == 1  # after the upsampling block of its resolution
    size = 4 * 2 ** (g_attn[0] // 2 + 1)  # output size of that stage
    assert size == attention and resolution // 2 ** (d_attn[0] + 1) == attention
    # G: the first block of a stage keeps its width and size, the second upsamples (and narrows,
    # except in the 32 px table, which keeps 4ch throughout).
    first, second = G.blocks[0][0], G.blocks[1][0]
    assert not first.upsample and second.upsample
    assert first.out_channels == first.conv1.in_channels and second.out_channels <= second.conv1.in_channels


def test_forward_backward_and_shapes():
    cfg = _cfg(64)
    G, D = build_models(cfg, seeded(0))
    assert isinstance(G, DeepGenerator) and isinstance(D, DeepDiscriminator) and G.dim_z == 16
    z, y = torch.randn(3, 16), torch.tensor([0, 2, 4])
    x = G(z, y)
    assert x.shape == (3, 3, 64, 64) and x.abs().max() <= 1
    out = D(x, y)
    assert out.shape == (3,)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    assert G.linear.weight.shape[1] == 8 + 16  # [embedding, z], whole (Appendix B: z is not split)


def test_family_is_chosen_by_arch_and_the_other_family_refuses():
    deep, biggan = _cfg(), ModelConfig(resolution=32, num_classes=5, ch=4)
    assert generator_class(deep) is DeepGenerator and discriminator_class(deep) is DeepDiscriminator
    assert generator_class(biggan) is Generator and discriminator_class(biggan) is Discriminator
    with pytest.raises(ValueError, match="BigGAN's generator"):
        Generator(deep)
    with pytest.raises(ValueError, match="BigGAN's discriminator"):
        Discriminator(deep)
    with pytest.raises(ValueError, match="DeepGenerator builds model.arch=deep"):
        DeepGenerator(biggan)


def test_config_refuses_what_biggan_deep_is_not():
    with pytest.raises(ValueError, match="leave model.shared and model.hier true"):
        ModelConfig(arch="deep", shared=False)
    with pytest.raises(ValueError, match="BigGAN-deep fields"):
        ModelConfig(rgb_channels=8)
    with pytest.raises(ValueError, match="BigGAN-deep fields"):
        ModelConfig(bn_truncation_points=51)


def test_seeded_build_gives_the_seeded_constructions_tensors():
    cfg = _cfg(32, bn_truncation_points=3, rgb_channels=16)
    torch.manual_seed(5)
    G_old, D_old = DeepGenerator(cfg), DeepDiscriminator(cfg)
    G_new, D_new = build_models(cfg, seeded(5))
    for old, new in ((G_old, G_new), (D_old, D_new)):
        a, b = old.state_dict(), new.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(G_new.truncation_statistics.vars, torch.ones(3, sum(m.num_features for m in batchnorms(G_new))))


@torch.no_grad()
def test_g_block_shortcut_drops_channels_and_upsamples():
    sn = SNFactory(1, 1, 1e-4)
    from biggan.models.layers import ConditionalBNFactory

    block = DeepGBlock(16, 8, upsample=True, sn=sn, make_bn=ConditionalBNFactory(6, True, sn, 1e-4, None)).eval()
    block.conv4.weight.zero_()
    block.conv4.bias.zero_()
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(block(x, torch.randn(2, 6)), F.interpolate(x[:, :8], scale_factor=2, mode="nearest"))
    assert block.conv1.weight.shape == (4, 16, 1, 1) and block.conv2.weight.shape == (4, 4, 3, 3)  # ratio 4


@torch.no_grad()
def test_d_block_shortcut_appends_conv_channels_to_the_pooled_input():
    block = DeepDBlock(8, 16, downsample=True, sn=SNFactory(1, 1, 1e-4)).eval()
    block.conv4.weight.zero_()
    block.conv4.bias.zero_()
    x = torch.randn(2, 8, 8, 8)
    pooled = F.avg_pool2d(x, 2)
    expected = torch.cat([pooled, block.conv_sc(pooled)], dim=1)
    torch.testing.assert_close(block(x), expected)
    assert block.conv_sc.weight.shape == (8, 8, 1, 1)  # out - in new channels only
    assert DeepDBlock(16, 16, downsample=False, sn=SNFactory(1, 1, 1e-4)).conv_sc is None


def test_cross_replica_bn_sn_tracking_and_channels_last_bf16_reach_every_layer():
    cfg = _cfg(32)
    G, D = build_models(cfg, seeded(1))
    assert set_bn_reducer(G, CrossReplicaReducer()) == 6 * 4 + 1  # 4 conditional BNs per block + the output BN
    set_bn_reducer(G, LocalReducer())  # back to one process: nothing below all-reduces
    convs = [m for m in list(G.modules()) + list(D.modules()) if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(sn_layers(G)) + len(sn_layers(D)) == len(convs) + 1  # every conv and linear, and D's embedding
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    z, y = torch.randn(4, 16), torch.randint(0, 5, (4,))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        D(G(z, y), y).float().sum().backward()
    for name, p in [("G." + n, p) for n, p in G.named_parameters()] + [("D." + n, p) for n, p in D.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(len(v) == cfg.sn_tracked_svs for v in singular_values(G).values())


def test_training_step_with_ortho_reg_ema_and_standing_statistics():
    from biggan.sampling.standing import standing_stats_
    from biggan.train.ema import EMA
    from biggan.train.loop import LatentSampler
    from biggan.train.step import TrainStep

    cfg = apply_overrides(digits32_deep(), {"model.num_classes": 10, "model.ch": 4, "model.dim_z": 16,
                                            "model.shared_dim": 8, "train.batch_size": 4, "train.precision": "fp32"})
    assert cfg.model.arch == "deep" and cfg.train.ortho
    G, D = build_models(cfg.model, seeded(0))
    G_ema = generator_class(cfg.model)(cfg.model)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1, torch.randint(10, (4,), generator=gen)

    sampler = LatentSampler(16, 10, "normal", torch.device("cpu"))
    step = TrainStep(G, D, EMA(G, G_ema, 0.5, 0), opt_G, opt_D, batches(), sampler,
                     torch.Generator().manual_seed(1), cfg.train, 4, torch.device("cpu"))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    metrics = step.step(1, tick=True)
    assert metrics["grad_norm/G"] > 0 and metrics["grad_norm/D"] > 0
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    changed = [k for k, v in G.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.endswith("conv2.weight") for k in changed) and any(k.endswith("running_mean") for k in changed)
    assert not torch.equal(G_ema.linear.weight, before["linear.weight"])  # the EMA moved too
    standing_stats_(G_ema, 10, batches=2, batch_size=8, truncation=0.5)
    assert not G_ema.training and float(G_ema.output_bn.bn.num_batches_tracked) == 2


def test_params_cli_arch_deep_matches_the_reference_counts():
    from biggan.cli import main

    result = CliRunner().invoke(main, ["params", "--arch", "deep", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["row"]: row for row in json.loads(result.output)}
    for label in ("BigGAN-deep 128 px", "BigGAN-deep 256 px"):
        assert rows[label]["diff_G"] == 0 and rows[label]["diff_D"] == 0 and "BigGANdeep.py" in rows[label]["reference"]
    for size in (128, 256, 512):
        assert rows[f"TF-Hub biggan-deep-{size} (G)"]["diff_G"] == 0
    assert rows["BigGAN-deep 128 px"]["G"] == 50_244_484 and rows["BigGAN-deep 512 px"]["reference_G"] is None
    table = CliRunner().invoke(main, ["params", "--arch", "deep"])
    assert table.exit_code == 0 and "BigGAN-deep 256 px" in table.output and "55,736,708" in table.output
