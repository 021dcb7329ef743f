"""The paths that only run on a CUDA GPU (marked `cuda`, skipped without one; on the GPU machine:
`python -m pytest -m cuda tests/unit/test_cuda_paths.py`, as benchmarks/gpu_check.py part 4 does).

Cross-replica BN all-reduces on CUDA tensors through gloo (the same reducer the CPU test checks
in test_models_batchnorm.py, here on the device), `auto` precision picks bf16 on a GPU, a bf16 +
channels_last G and D pass stays finite with D's output in fp32, and evaluation's device and
generated batches land on the GPU.
"""

from __future__ import annotations

import pytest
import torch

from tests.unit.test_models_batchnorm import _cross_replica_rank

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m cuda there)")]

@pytest.mark.timeout(180)
def test_cross_replica_bn_over_two_gloo_processes_on_cuda_tensors_equals_one_process_with_the_doubled_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_cross_replica_rank, args=(2, str(tmp_path / "pg"), "cuda", 6, 8), nprocs=2, join=True)


def test_auto_precision_is_bf16_on_a_gpu_with_bf16():
    from biggan.train.precision import resolve_precision

    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == expected


@torch.no_grad()
def test_bf16_channels_last_g_and_d_on_cuda_are_finite_and_d_output_is_fp32():
    from biggan.config import ModelConfig
    from biggan.models import build_models, seeded

    cfg = ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=64, shared_dim=32)
    G, D = build_models(cfg, seeded(0))
    device = torch.device("cuda")
    for net in (G, D):
        net.to(device=device, memory_format=torch.channels_last).eval()
    z, y = torch.randn(4, G.dim_z, device=device), torch.arange(4, device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        images = G(z, y)
        logits = D(images, y)
    assert images.is_cuda and torch.isfinite(images).all()
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_eval_device_cuda_and_generated_batches_are_uint8_on_the_gpu():
    from biggan.config import ModelConfig
    from biggan.models import build_models, seeded
    from biggan.sampling.device import resolve_device
    from biggan.sampling.images import generated_batches

    device = resolve_device("cuda")
    assert device.type == "cuda" and resolve_device("auto").type == "cuda"
    G, _D = build_models(ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=64, shared_dim=32), seeded(0))
    G.to(device).eval()
    batches = list(generated_batches(G, 10, 10, None, "normal", 4, 0, device))
    assert [images.shape[0] for images, _y in batches] == [4, 4, 2]
    assert all(images.dtype == torch.uint8 and images.is_cuda for images, _y in batches)
