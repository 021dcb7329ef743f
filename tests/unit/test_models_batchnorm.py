"""Reducer-backed (conditional) BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biggan.config import ModelConfig
from biggan.models import Generator
from biggan.models.batchnorm import (
    BatchNorm2d,
    BatchStatsReducer,
    ConditionalBatchNorm2d,
    CrossReplicaReducer,
    LocalReducer,
    batchnorms,
    set_bn_reducer,
)

torch.set_num_threads(1)


def _zero_cbn(channels: int, cond_dim: int, eps: float) -> ConditionalBatchNorm2d:
    gain, bias = nn.Linear(cond_dim, channels, bias=False), nn.Linear(cond_dim, channels, bias=False)
    nn.init.zeros_(gain.weight)
    nn.init.zeros_(bias.weight)
    return ConditionalBatchNorm2d(channels, cond_dim, gain, bias, eps=eps, reducer=LocalReducer())


def test_local_cbn_equals_torch_batchnorm_in_train_mode():
    """Zero projections = gain 1, bias 0: output, input gradient and running stats equal BatchNorm2d's."""
    torch.manual_seed(0)
    x = torch.randn(6, 5, 4, 3) * 3 + 1
    cond = torch.randn(6, 7)
    ours, ref = _zero_cbn(5, 7, eps=1e-4), nn.BatchNorm2d(5, eps=1e-4, momentum=0.1)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = ours(xa, cond), ref(xb)
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out_a)
    (out_a * weights).sum().backward()
    (out_b * weights).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.bn.running_mean, ref.running_mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.bn.running_var, ref.running_var, atol=1e-5, rtol=1e-5)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x, cond), ref(x), atol=1e-5, rtol=1e-5)


def test_cbn_matches_hand_computation_with_gain_and_bias():
    torch.manual_seed(1)
    x, cond = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    cbn = _zero_cbn(3, 2, eps=1e-4)
    nn.init.normal_(cbn.gain.weight)
    nn.init.normal_(cbn.bias.weight)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    gain = 1 + cond @ cbn.gain.weight.t()
    bias = cond @ cbn.bias.weight.t()
    expected = (x - mean) / torch.sqrt(var + 1e-4) * gain[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(cbn(x, cond), expected, atol=1e-5, rtol=1e-5)


def test_gain_is_one_centred_and_bias_zero_centred_in_generator():
    """Zeroing every BN projection of G leaves plain BN: gain exactly 1, bias exactly 0."""
    G = Generator(ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=16, shared_dim=8))
    cbn = G.blocks[0][0].bn1
    with torch.no_grad():
        cbn.gain.weight.zero_()
        cbn.bias.weight.zero_()
    cond = torch.randn(3, cbn.cond_dim)
    assert torch.equal(1.0 + cbn.gain(cond), torch.ones(3, cbn.bn.num_features))
    assert torch.equal(cbn.bias(cond), torch.zeros(3, cbn.bn.num_features))


class CountingReducer:
    def __init__(self) -> None:
        self.calls = 0

    def reduce(self, sum, sum_sq, count):
        self.calls += 1
        return sum, sum_sq, count


def test_reducer_consulted_by_every_bn_including_output():
    G = Generator(ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=16, shared_dim=8))
    reducer = CountingReducer()
    assert isinstance(reducer, BatchStatsReducer)
    n = set_bn_reducer(G, reducer)
    assert n == 2 * len(G.blocks) + 1  # two cBNs per block + the output BN
    assert isinstance(G.output_bn, BatchNorm2d) and G.output_bn.bn.reducer is reducer
    G.train()
    G(torch.randn(2, G.dim_z), torch.tensor([0, 3]))
    assert reducer.calls == n
    G.eval()
    G(torch.randn(2, G.dim_z), torch.tensor([0, 3]))
    assert reducer.calls == n  # eval uses running statistics: no reduction


def test_reducer_passed_at_construction():
    reducer = CountingReducer()
    G = Generator(ModelConfig(resolution=32, num_classes=4, ch=4, dim_z=16, shared_dim=8), bn_reducer=reducer)
    assert all(layer.reducer is reducer for layer in batchnorms(G))


def _cross_replica_rank(rank: int, world: int, init_file: str, device: str = "cpu", per_rank: int = 4,
                        channels: int = 3) -> None:
    """One of `world` gloo processes: its part of a seeded batch through a cBN with the cross-replica
    reducer must give what BatchNorm2d gives on the whole batch in one process. `device="cuda"`:
    both ranks on the one GPU, gloo moving the CUDA tensors itself (tests/unit/test_cuda_paths.py)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(2)  # the same data on every rank
        x = (torch.randn(per_rank * world, channels, 5, 5) * 2 + 0.5).to(device)
        upstream = torch.randn_like(x)
        ref = nn.BatchNorm2d(channels, eps=1e-4, momentum=0.1).to(device)
        whole = x.clone().requires_grad_(True)
        expected = ref(whole)
        (expected * upstream).sum().backward()
        mine = slice(per_rank * rank, per_rank * (rank + 1))
        cbn = _zero_cbn(channels, 2, 1e-4).to(device)
        cbn.bn.reducer = CrossReplicaReducer()
        part = x[mine].clone().requires_grad_(True)
        out = cbn(part, torch.zeros(per_rank, 2, device=device))
        (out * upstream[mine]).sum().backward()
        assert out.device == part.grad.device == x.device
        torch.testing.assert_close(out.detach(), expected.detach()[mine], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(part.grad, whole.grad[mine], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(cbn.bn.running_mean, ref.running_mean, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(cbn.bn.running_var, ref.running_var, atol=1e-5, rtol=1e-5)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_cross_replica_reducer_over_two_gloo_processes_equals_bn_over_the_whole_batch(tmp_path):
    """Two real gloo processes (spawned, so no process group of this one is in the way): output,
    input gradient and running statistics of each replica's part equal BN over the global batch."""
    import torch.multiprocessing as mp

    mp.spawn(_cross_replica_rank, args=(2, str(tmp_path / "pg")), nprocs=2, join=True)


# --------------------------------------------------------------------------- fused BN + affine


class MirrorReducer:
    """Pretends a second replica holds exactly this batch (and gets the same upstream
    gradient): sums and count double, which is what cross-replica BN over [x; x] sees."""

    def reduce(self, sum, sum_sq, count):
        return 2 * sum, 2 * sum_sq, 2 * count


def _bn_pair(channels: int, eps: float):
    ours = BatchNorm2d(channels, eps=eps, reducer=LocalReducer())
    ref = nn.BatchNorm2d(channels, eps=eps, momentum=0.1)
    with torch.no_grad():
        ours.gain.copy_(torch.randn(channels))
        ours.bias.copy_(torch.randn(channels))
        ref.weight.copy_(ours.gain)
        ref.bias.copy_(ours.bias)
    return ours, ref


def test_output_bn_matches_native_batchnorm_output_gradients_and_running_stats():
    """BN with a learnable gain and bias against nn.BatchNorm2d (F.batch_norm's native kernel)."""
    torch.manual_seed(3)
    ours, ref = _bn_pair(6, 1e-4)
    x = torch.randn(5, 6, 7, 4) * 2 + 0.5
    for memory_format in (torch.contiguous_format, torch.channels_last):
        xa = x.clone(memory_format=memory_format).requires_grad_(True)
        xb = x.clone().requires_grad_(True)
        out_a, out_b = ours(xa), ref(xb)
        torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
        weights = torch.randn_like(out_b)
        (out_a * weights).sum().backward()
        (out_b * weights).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ours.gain.grad, ref.weight.grad, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=1e-4, rtol=1e-5)
        for p in (ours.gain, ours.bias, ref.weight, ref.bias):
            p.grad = None
    torch.testing.assert_close(ours.bn.running_mean, ref.running_mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.bn.running_var, ref.running_var, atol=1e-5, rtol=1e-5)
    assert int(ours.bn.num_batches_tracked) == int(ref.num_batches_tracked) == 2


def test_cbn_gradients_match_autograd_of_the_definition_float64():
    """Per-sample gain and bias: output and gradients (x, both projections) equal autograd of
    (x - mean) / sqrt(var + eps) * (1 + W_g c) + W_b c, NCHW and channels_last."""
    torch.manual_seed(4)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = (torch.randn(6, 5, 4, 3, dtype=torch.float64) * 3 + 1).contiguous(memory_format=memory_format)
        cond = torch.randn(6, 7, dtype=torch.float64)
        cbn = _zero_cbn(5, 7, eps=1e-4).double()
        nn.init.normal_(cbn.gain.weight)
        nn.init.normal_(cbn.bias.weight)
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out_a = cbn(xa, cond)
        weights = torch.randn_like(out_a)
        (out_a * weights).sum().backward()
        grads_a = [cbn.gain.weight.grad.clone(), cbn.bias.weight.grad.clone()]
        cbn.zero_grad()
        mean = xb.mean(dim=(0, 2, 3), keepdim=True)
        var = xb.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        gain, bias = 1 + cbn.gain(cond), cbn.bias(cond)
        out_b = (xb - mean) / torch.sqrt(var + 1e-4) * gain[:, :, None, None] + bias[:, :, None, None]
        (out_b * weights).sum().backward()
        torch.testing.assert_close(out_a, out_b, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(grads_a[0], cbn.gain.weight.grad, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(grads_a[1], cbn.bias.weight.grad, atol=1e-12, rtol=1e-10)


def test_normalize_affine_gradcheck():
    from biggan.models.batchnorm import ReducedBatchNorm

    torch.manual_seed(5)
    bn = ReducedBatchNorm(3, eps=1e-4).double()
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    for rows in (4, 1):  # per-sample (cBN) and per-channel (output BN) affine
        gain = torch.randn(rows, 3, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(rows, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(bn.affine, (x, gain, bias))


def test_cross_replica_statistics_and_backward_equal_bn_over_the_global_batch():
    """With a (simulated) second replica holding the same batch, output and input gradient equal
    those of native BN over [x; x]: statistics AND the backward's two sums are all-reduced."""
    torch.manual_seed(6)
    ours, ref = _bn_pair(4, 1e-4)
    ours.bn.reducer = MirrorReducer()
    x = torch.randn(3, 4, 5, 5) * 1.5 - 0.3
    xa = x.clone().requires_grad_(True)
    xb = torch.cat([x, x]).requires_grad_(True)
    out_a, out_b = ours(xa), ref(xb)
    torch.testing.assert_close(out_a, out_b[:3], atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out_a)
    (out_a * weights).sum().backward()
    (out_b * torch.cat([weights, weights])).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad[:3], atol=1e-5, rtol=1e-4)
    # Each replica's gain gradient is its own half; averaging over replicas (the loop's
    # gradient all-reduce) gives half of the global-batch gradient, exactly as before.
    torch.testing.assert_close(2 * ours.gain.grad, ref.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(ours.bn.running_var, ref.running_var, atol=1e-6, rtol=1e-5)


def test_gain_bias_and_statistics_stay_fp32_under_bf16_autocast():
    """Under bf16 autocast the cBN gain 1 + W c and bias are fp32 (so is the normalisation);
    only the returned activation is rounded to the input's bf16."""
    torch.manual_seed(7)
    cbn = _zero_cbn(4, 3, eps=1e-4)
    nn.init.normal_(cbn.gain.weight, std=1e-3)  # a gain of 1 +- 1e-3: lost entirely in bf16
    x = torch.randn(8, 4, 3, 3).to(torch.bfloat16)
    cond = torch.randn(8, 3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = cbn(x, cond)
    assert out.dtype == torch.bfloat16
    expected = cbn(x.float(), cond)  # fp32 all through, from the same bf16 input
    torch.testing.assert_close(out.float(), expected.to(torch.bfloat16).float(), atol=0, rtol=0)
