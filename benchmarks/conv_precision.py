"""Does bf16 autocast (or channels_last) pay on this CPU? 3x3 conv forward+backward and GEMM rates.

    python benchmarks/conv_precision.py --threads 1

For each shape (batch, channels in, size, channels out) from the BigGAN configurations of
docs/performance.md: median ms of conv2d forward + backward (input, weight and bias
gradients) in fp32, under `torch.autocast("cpu", dtype=torch.bfloat16)`, and both again with
channels_last tensors; then a 2048^3 matmul in fp32 and bf16; last, the speed-up the training
loop's `train.precision=auto` measures on this CPU and what it picks (biggan/train/precision.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(16, 32, 32, 32), (32, 32, 16, 32), (64, 128, 16, 128), (64, 128, 32, 128), (128, 128, 32, 128),
          (16, 16, 128, 16), (16, 256, 8, 256)]


def median_ms(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def conv_ms(shape, bf16: bool, channels_last: bool, repeats: int) -> float:
    b, cin, size, cout = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(b, cin, size, size).contiguous(memory_format=fmt).requires_grad_(True)
    w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=fmt).requires_grad_(True)
    bias = torch.randn(cout, requires_grad=True)

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.conv2d(x, w, bias, padding=1)
        y.float().sum().backward()

    return median_ms(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    print(f"torch {torch.__version__}, threads {args.threads}, AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}, "
          f"AMX {amx}")
    print(f"{'shape (b, cin, hw, cout)':26} {'fp32':>8} {'bf16':>8} {'cl fp32':>8} {'cl bf16':>8}   bf16/fp32")
    for shape in SHAPES:
        t = [conv_ms(shape, bf16, cl, args.repeats) for cl in (False, True) for bf16 in (False, True)]
        print(f"{str(shape):26} {t[0]:8.1f} {t[1]:8.1f} {t[2]:8.1f} {t[3]:8.1f}   {t[1] / t[0]:.2f}x time")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        ms = median_ms(lambda a=a, b=b: a @ b, args.repeats)
        print(f"matmul 2048^3 {str(dtype):15} {2 * 2048**3 / ms / 1e6:7.1f} GFLOP/s")
    from biggan.train.precision import cpu_bf16_speedup, resolve_precision

    print(f"train.precision=auto: bf16 measured {cpu_bf16_speedup(args.threads):.2f}x fp32's speed -> "
          f"{resolve_precision('auto', torch.device('cpu'))}")


if __name__ == "__main__":
    main()
