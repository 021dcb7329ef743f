"""Throughput of the full BigGAN training step (2 D steps + 1 G step, ortho reg, EMA).

    python benchmarks/train_step.py                       # digits32 on CPU
    python benchmarks/train_step.py --preset imagenet128 --device cuda --batch 256   # GPU: bf16, channels_last, MFU

The step is built as the training loop builds it, with the preset's precision and memory
format (`auto` resolved as the loop resolves it: bf16 on a CPU only where a measured bf16
convolution beats fp32; channels_last is the default), and
runs as between logging ticks (`tick=False`). Real images come from an in-memory tensor so
the figure is the step alone (the shard loader has its own benchmark). images/s counts the
real images D sees: batch x d_steps per iteration. On GPU the model FLOPs of one step are
counted with torch's FlopCounterMode and MFU = achieved FLOP/s / --peak-tflops (H100 SXM
dense bf16: 989).
"""

from __future__ import annotations

import argparse
import time

import torch

from biggan.config import apply_overrides
from biggan.models import discriminator_class, generator_class
from biggan.presets import get_preset
from biggan.train.allocator import keep_freed_memory
from biggan.train.ema import EMA
from biggan.train.loop import LatentSampler
from biggan.train.precision import resolve_precision
from biggan.train.step import TrainStep


def build_step(preset: str, batch: int | None, device: torch.device, overrides: dict) -> tuple[TrainStep, int]:
    cfg = get_preset(preset)
    overrides = {"cluster.num_workers": 1, **overrides}  # one process: the whole batch here
    if batch is not None:
        overrides = {**overrides, "train.batch_size": batch}
    if cfg.model.num_classes is None:  # presets take it from the data; ImageNet's 1000, the digits' 10
        overrides = {"model.num_classes": 1000 if preset.startswith(("imagenet", "jft")) else 10, **overrides}
    cfg = apply_overrides(cfg, overrides)
    tcfg = cfg.train.model_copy(update={"precision": resolve_precision(cfg.train.precision, device)})
    micro = tcfg.batch_size // tcfg.accumulation
    # The global RNG on purpose (a benchmark's own process): the fake batch below is drawn after
    # the three networks, as it always was, so every figure and the fp32 reference stay comparable.
    torch.manual_seed(0)
    G, D = generator_class(cfg.model)(cfg.model), discriminator_class(cfg.model)(cfg.model)
    G_ema = generator_class(cfg.model)(cfg.model)
    fmt = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    for net in (G, D, G_ema):
        net.to(device=device, memory_format=fmt)
    # As the loop builds them (foreach: one kernel per update stage, the same values as the loop).
    opt_G = torch.optim.Adam(G.parameters(), lr=tcfg.g_lr, betas=tcfg.betas, eps=tcfg.adam_eps, foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), lr=tcfg.d_lr, betas=tcfg.betas, eps=tcfg.adam_eps, foreach=True)
    ema = EMA(G, G_ema, tcfg.ema_decay, 0)
    res = cfg.model.resolution
    images = torch.rand(micro, 3, res, res, device=device) * 2 - 1
    labels = torch.randint(cfg.model.num_classes, (micro,), device=device)

    def batches():
        while True:
            yield images, labels

    rng = torch.Generator(device=device).manual_seed(0)
    sampler = LatentSampler(G.dim_z, cfg.model.num_classes, cfg.model.latent, device)
    if device.type == "cpu":  # as the launcher sets it where a training process starts (biggan.train.allocator)
        keep_freed_memory()
    step = TrainStep(G, D, ema, opt_G, opt_D, batches(), sampler, rng, tcfg, micro, device)
    return step, tcfg.batch_size * tcfg.d_steps


def step_flops(step: TrainStep) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step.step(1)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="global batch on this one device (default: preset's)")
    parser.add_argument("--ch", type=int, default=None, help="channel multiplier (imagenet128: 96)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak for MFU (H100 SXM bf16 dense)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {} if args.ch is None else {"model.ch": args.ch}
    step, images_per_iteration = build_step(args.preset, args.batch, device, overrides)
    for i in range(args.warmup):
        step.step(i + 1, tick=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(args.iterations):
        step.step(args.warmup + i + 1, tick=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    its = args.iterations / seconds
    print(f"preset={args.preset} device={device} precision={step.cfg.precision} channels_last={step.cfg.channels_last} "
          f"batch={step.cfg.batch_size} threads={torch.get_num_threads()}")
    print(f"iterations/s: {its:.3f}  ({seconds / args.iterations * 1000:.1f} ms per 2D+1G step)")
    print(f"images/s (real images seen by D): {its * images_per_iteration:.1f}")
    if device.type == "cuda":
        flops = step_flops(step)
        achieved = flops * its
        print(f"model FLOPs per step: {flops / 1e12:.2f} TFLOP; achieved {achieved / 1e12:.1f} TFLOP/s; "
              f"MFU {achieved / (args.peak_tflops * 1e12) * 100:.1f}% of {args.peak_tflops:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
