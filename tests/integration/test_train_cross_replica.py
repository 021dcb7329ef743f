"""Cross-replica BN, exactly: 2 gloo workers with batch b each give the same G outputs
and the same averaged G and D gradients as 1 worker with batch 2b. Real torch.distributed
processes (no Ray needed for this property); the loop's own gradient averaging is used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from biggan.config import ModelConfig
from biggan.models import build_models
from biggan.models.batchnorm import CrossReplicaReducer, set_bn_reducer
from biggan.train import dist
from biggan.train.losses import hinge_d, hinge_g
from tests.support.sockets import free_port

B = 4  # per-worker batch
CFG = ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=16, shared_dim=8)


def _inputs():
    g = torch.Generator().manual_seed(123)
    z = torch.randn(2 * B, 16, generator=g)
    y = torch.randint(10, (2 * B,), generator=g)
    real = torch.rand(2 * B, 3, 32, 32, generator=g) * 2 - 1
    return z, y, real


def _forward_backward(G, D, z, y, real):
    """G step loss through D, then a D loss on real vs fake: gradients for both nets."""
    fake = G(z, y)
    hinge_g(D(fake, y)).backward()
    d_loss, _, _ = hinge_d(D(real, y), D(fake.detach(), y))
    D.zero_grad(set_to_none=True)
    d_loss.backward()
    return fake.detach()


def _grads(module):
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, out: str):
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        G, D = build_models(CFG)
        set_bn_reducer(G, CrossReplicaReducer())
        dist.broadcast_module_(G)
        dist.broadcast_module_(D)
        z, y, real = _inputs()
        part = slice(rank * B, (rank + 1) * B)
        fake = _forward_backward(G, D, z[part], y[part], real[part])
        dist.average_gradients_(G)
        dist.average_gradients_(D)
        torch.save({"fake": fake, "G": _grads(G), "D": _grads(D),
                    "running_mean": {n: b.clone() for n, b in G.named_buffers() if "running_mean" in n}},
                   f"{out}/rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_workers_batch_b_equal_one_worker_batch_2b(tmp_path: Path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    G, D = build_models(CFG)
    z, y, real = _inputs()
    fake_full = _forward_backward(G, D, z, y, real)
    g_full, d_full = _grads(G), _grads(D)
    rm_full = {n: b for n, b in G.named_buffers() if "running_mean" in n}

    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    fake_dist = torch.cat([ranks[0]["fake"], ranks[1]["fake"]])
    torch.testing.assert_close(fake_dist, fake_full, atol=1e-5, rtol=1e-4)
    assert g_full.keys() == ranks[0]["G"].keys() and len(g_full) > 10
    for name, grad in g_full.items():
        for r in range(2):
            torch.testing.assert_close(ranks[r]["G"][name], grad, atol=1e-5, rtol=1e-3, msg=f"G grad {name} rank {r}")
    for name, grad in d_full.items():
        torch.testing.assert_close(ranks[0]["D"][name], grad, atol=1e-5, rtol=1e-3, msg=f"D grad {name}")
    for name, mean in rm_full.items():  # running stats updated with the global batch statistics
        torch.testing.assert_close(ranks[1]["running_mean"][name], mean, atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_local_bn_would_differ(tmp_path: Path):
    """Control: without the cross-replica reducer, per-worker BN statistics change G's output,
    so the equality above is a real check and not true by construction."""
    torch.manual_seed(0)
    G, _ = build_models(CFG)
    z, y, _ = _inputs()
    full = G(z, y).detach()
    halves = torch.cat([G(z[:B], y[:B]).detach(), G(z[B:], y[B:]).detach()])
    assert (full - halves).abs().max() > 1e-3
