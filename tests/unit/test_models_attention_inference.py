"""Attention without a graph holds a bounded map: at 128 px the non-local blocks sit at 64 x 64
(Appendix B), and one map for an evaluation batch of 100 is 1.6 GB. Above INFERENCE_MAP_BYTES the
inference path takes blocks of query rows; below it, the very ops of the unblocked form."""

from __future__ import annotations

import torch

from biggan.models import attention
from biggan.models.attention import SelfAttention, attention_core


def _inputs(b=3, n=256, m=64, d=4, c=16):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(b, n, d, generator=generator), torch.randn(b, d, m, generator=generator),
            torch.randn(b, m, c, generator=generator))


def _plain(theta_t, phi, g_t):
    return torch.bmm(torch.softmax(torch.bmm(theta_t, phi), dim=-1), g_t)


def test_small_maps_take_the_unblocked_ops_bit_for_bit():
    theta_t, phi, g_t = _inputs()
    with torch.no_grad():
        assert torch.equal(attention_core(theta_t, phi, g_t), _plain(theta_t, phi, g_t))


def test_large_maps_are_computed_in_row_blocks_to_rounding(monkeypatch):
    theta_t, phi, g_t = _inputs()
    calls = []
    real_bmm = torch.bmm

    def counting_bmm(a, b, **kwargs):
        calls.append(tuple(a.shape))
        return real_bmm(a, b, **kwargs)

    # A map of 3 x 256 x 64 floats is 196 KB: a 16 KB budget gives blocks of 21 rows.
    monkeypatch.setattr(attention, "INFERENCE_MAP_BYTES", 16 * 2**10)
    monkeypatch.setattr(torch, "bmm", counting_bmm)
    with torch.no_grad():
        blocked = attention_core(theta_t, phi, g_t)
    monkeypatch.setattr(torch, "bmm", real_bmm)
    rows = 16 * 2**10 // (3 * 64 * 4)
    assert max(shape[1] for shape in calls) <= rows and len(calls) == 2 * -(-256 // rows)
    torch.testing.assert_close(blocked, _plain(theta_t, phi, g_t), rtol=1e-5, atol=1e-6)


def test_a_self_attention_block_samples_the_same_blocked_or_not(monkeypatch):
    torch.manual_seed(0)
    block = SelfAttention(16, num_svs=1, num_iterations=1, sn_eps=1e-4).eval()
    with torch.no_grad():
        block.gamma.fill_(1.0)
        x = torch.randn(4, 16, 16, 16)
        whole = block(x)
        monkeypatch.setattr(attention, "INFERENCE_MAP_BYTES", 4 * 2**10)
        torch.testing.assert_close(block(x), whole, rtol=1e-5, atol=1e-6)
