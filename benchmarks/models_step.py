"""Forward + backward time of G and D (one hinge D step and one G step, no optimizer).

    python benchmarks/models_step.py --resolution 32 --ch 32 --batch 64 --threads 1
    python benchmarks/models_step.py --resolution 128 --ch 96 --batch 4 --classes 1000

Prints the median of --repeats timed runs after --warmup runs; figures belong in the README
with the command that produced them, never in a unit test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from biggan.config import ModelConfig
from biggan.models import build_models, seeded
from biggan.train.losses import hinge_d, hinge_g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--ch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = ModelConfig(resolution=args.resolution, num_classes=args.classes, ch=args.ch)
    G, D = build_models(cfg, seeded(0))
    G.to(device), D.to(device)
    x_real = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    def step() -> None:
        z = torch.randn(args.batch, G.dim_z, device=device)
        fake = G(z, y)
        loss_d, _, _ = hinge_d(D(x_real, y), D(fake.detach(), y))
        loss_d.backward()
        hinge_g(D(fake, y)).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    n_g = sum(p.numel() for p in G.parameters()) / 1e6
    n_d = sum(p.numel() for p in D.parameters()) / 1e6
    print(f"{args.resolution} px, ch {args.ch}, {args.classes} classes, batch {args.batch}, "
          f"device {device}, threads {args.threads}: G {n_g:.2f} M, D {n_d:.2f} M params; "
          f"G+D forward+backward (D real+fake, G) median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f} ms over {args.repeats})")


if __name__ == "__main__":
    main()
