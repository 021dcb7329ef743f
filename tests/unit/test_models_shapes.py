"""G and D build, run and backpropagate at every resolution (tiny widths, CPU)."""

from __future__ import annotations

import pytest
import torch

from biggan.config import ModelConfig
from biggan.models import Discriminator, Generator, build_models
from biggan.models.attention import SelfAttention

torch.set_num_threads(1)


@pytest.mark.parametrize("resolution,expected_dim_z,blocks", [
    (32, 128, 3), (64, 120, 4), (128, 120, 5), (256, 140, 6), (512, 128, 7),
])
def test_shapes_every_resolution(resolution, expected_dim_z, blocks):
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=resolution, num_classes=7, ch=8, shared_dim=16)
    G, D = build_models(cfg)
    assert G.dim_z == expected_dim_z  # Appendix B latent sizes, split evenly into blocks + 1 chunks
    assert len(G.blocks) == blocks and len(D.blocks) == blocks + 1
    z = torch.randn(2, G.dim_z)
    y = torch.tensor([0, 6])
    with torch.no_grad():
        x = G(z, y)
        logits = D(x, y)
    assert x.shape == (2, 3, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert logits.shape == (2,)


def _attention_resolutions(model, start: int, up: bool) -> list[int]:
    found, size = [], start
    for stage in model.blocks:
        block = stage[0]
        size = size * 2 if up else (size // 2 if block.downsample else size)
        if any(isinstance(layer, SelfAttention) for layer in stage):
            found.append(size)
    return found


@pytest.mark.parametrize("resolution,g_at,d_at", [(128, 64, 64), (256, 128, 64), (512, 64, 64)])
def test_attention_where_the_paper_puts_it(resolution, g_at, d_at):
    with torch.device("meta"):
        G, D = build_models(ModelConfig(resolution=resolution, num_classes=3, ch=8))
    assert _attention_resolutions(G, 4, up=True) == [g_at]
    assert _attention_resolutions(D, resolution, up=False) == [d_at]


def test_128_channel_table():
    """Table 4a: G blocks ch x [16,16,8,4,2] -> [16,8,4,2,1]; Table 4b: D ch x [1,2,4,8,16,16]."""
    with torch.device("meta"):
        G, D = build_models(ModelConfig(resolution=128, num_classes=3, ch=2, g_attention=None, d_attention=None))
    g = [(s[0].conv1.in_channels, s[0].conv2.out_channels) for s in G.blocks]
    assert g == [(32, 32), (32, 16), (16, 8), (8, 4), (4, 2)]
    d = [s[0].conv2.out_channels for s in D.blocks]
    assert d == [2, 4, 8, 16, 32, 32]
    assert D.blocks[0][0].conv1.in_channels == 3


def test_no_attention_when_disabled():
    G, D = build_models(ModelConfig(resolution=32, num_classes=3, ch=4, g_attention=None, d_attention=None))
    assert not any(isinstance(m, SelfAttention) for m in list(G.modules()) + list(D.modules()))


def test_bad_attention_resolution_is_a_clear_error():
    with pytest.raises(ValueError, match="no block at 48"):
        Generator(ModelConfig(resolution=32, num_classes=3, ch=4, g_attention=48))


def test_forward_backward_32px_cpu():
    """G and D forward + backward at 32 px on CPU; all gradients exist and are finite."""
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32, num_classes=10, ch=16, dim_z=64, shared_dim=32)
    G, D = Generator(cfg), Discriminator(cfg)
    z, y = torch.randn(8, G.dim_z), torch.randint(0, 10, (8,))
    (D(G(z, y), y).mean()).backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("shared,hier", [(True, True), (True, False), (False, False), (False, True)])
def test_ablation_toggles_run(shared, hier):
    """dim_z 22: hier splits it into 1 + 3 blocks = 4 chunks of 5 (rounded down to 20, as
    BigGAN-PyTorch does); block i's BN sees [class embedding, chunk i + 1], the linear chunk 0.
    Without hier all 22 go into the linear and the BNs see the class embedding alone."""
    cfg = ModelConfig(resolution=32, num_classes=5, ch=4, dim_z=22, shared_dim=8, shared=shared, hier=hier,
                      g_attention=None, d_attention=None)
    G = Generator(cfg)
    assert (G.shared is not None) == shared
    assert G.dim_z == (20 if hier else 22)
    assert G.linear.in_features == (5 if hier else 22)  # hier: z chunk only; otherwise the whole z
    class_dim = 8 if shared else 5
    assert [s[0].bn1.cond_dim for s in G.blocks] == [class_dim + (5 if hier else 0)] * 3
    seen: list[torch.Tensor] = []
    for stage in G.blocks:
        stage[0].bn1.register_forward_hook(lambda module, args, out: seen.append(args[1].detach()))
    linear_in: list[torch.Tensor] = []
    G.linear.register_forward_hook(lambda module, args, out: linear_in.append(args[0].detach()))
    z, y = torch.randn(3, G.dim_z), torch.tensor([0, 1, 4])
    assert G(z, y).shape == (3, 3, 32, 32)
    assert torch.equal(linear_in[0], z[:, :5] if hier else z)
    for index, cond in enumerate(seen):
        if hier:
            assert torch.equal(cond[:, class_dim:], z[:, 5 * (index + 1):5 * (index + 2)]), f"block {index}"
        assert torch.equal(cond[:, :class_dim], seen[0][:, :class_dim])  # the same class embedding everywhere


def test_wrong_latent_size_is_a_clear_error():
    G = Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8))
    with pytest.raises(ValueError, match="dim_z"):
        G(torch.randn(2, 15), torch.tensor([0, 1]))


def test_orthogonal_init():
    G = Generator(ModelConfig(resolution=32, num_classes=3, ch=4, dim_z=16, shared_dim=8))
    w = G.blocks[0][0].conv1.weight.reshape(G.blocks[0][0].conv1.weight.shape[0], -1)
    torch.testing.assert_close(w @ w.t(), torch.eye(w.shape[0]), atol=1e-5, rtol=0)


def test_channels_last_and_bf16_autocast_run():
    """TrainConfig.channels_last / precision=bf16 paths: SN reshapes (not views) the weight, and
    every parameter of G and D still gets a finite gradient (none is cut off by a cast)."""
    cfg = ModelConfig(resolution=32, num_classes=5, ch=8, dim_z=32, shared_dim=16)
    G, D = build_models(cfg)
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    z, y = torch.randn(4, G.dim_z), torch.randint(0, 5, (4,))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = D(G(z, y), y)
    logits.float().sum().backward()
    for name, p in [("G." + n, p) for n, p in G.named_parameters()] + [("D." + n, p) for n, p in D.named_parameters()]:
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), name


def test_attention_core_equals_autograd_bit_for_bit_and_the_paper_order_closely():
    """The in-place softmax core gives autograd's own values and gradients for o^T = beta g^T;
    BigGAN-PyTorch's o = g beta^T is the same sums in another order."""
    from biggan.models.attention import attention_core

    torch.manual_seed(0)
    theta_t = torch.randn(3, 64, 4, requires_grad=True)
    phi = torch.randn(3, 4, 16, requires_grad=True)
    g_t = torch.randn(3, 16, 8, requires_grad=True)
    probe = torch.randn(3, 64, 8)
    out = attention_core(theta_t, phi, g_t)
    grads = torch.autograd.grad((out * probe).sum(), (theta_t, phi, g_t))
    beta = torch.softmax(torch.bmm(theta_t, phi), dim=-1)
    ref = torch.bmm(beta, g_t)
    ref_grads = torch.autograd.grad((ref * probe).sum(), (theta_t, phi, g_t))
    assert torch.equal(out, ref) and all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
    paper = torch.bmm(g_t.transpose(1, 2), beta.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out, paper, rtol=1e-5, atol=1e-6)
    small = (torch.randn(2, 6, 3), torch.randn(2, 3, 5), torch.randn(2, 5, 4))
    assert torch.autograd.gradcheck(attention_core, tuple(t.double().requires_grad_(True) for t in small))


def test_attention_same_output_in_nchw_and_channels_last():
    torch.manual_seed(1)
    attention = SelfAttention(16, num_svs=1, num_iterations=1, sn_eps=1e-4).eval()
    with torch.no_grad():
        attention.gamma.fill_(0.7)
    x = torch.randn(2, 16, 8, 8)
    nchw = attention(x)
    nhwc = attention.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert nchw.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nchw, nhwc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_gblock_shortcut_conv_before_upsample_is_the_reference_map(channels_last):
    """BigGAN-PyTorch upsamples x, then applies the 1x1 shortcut; the block convolves first
    (a 1x1 conv commutes with nearest upsampling): the same output and input gradient."""
    import torch.nn.functional as F

    from biggan.models.layers import GBlock

    torch.manual_seed(0)
    G = Generator(ModelConfig(resolution=32, num_classes=5, ch=8, shared_dim=16)).eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    block = next(m for m in G.modules() if isinstance(m, GBlock)).to(memory_format=fmt)
    x = torch.randn(3, block.conv_sc.in_channels, 8, 8).contiguous(memory_format=fmt).requires_grad_(True)
    ours = F.interpolate(block.conv_sc(x), scale_factor=2, mode="nearest")
    reference = block.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    probe = torch.randn_like(ours)
    g_ours, = torch.autograd.grad((ours * probe).sum(), x)
    g_reference, = torch.autograd.grad((reference * probe).sum(), x)
    torch.testing.assert_close(g_ours, g_reference, rtol=1e-5, atol=1e-6)
