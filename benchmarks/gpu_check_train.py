"""Parts 1 and 2 of benchmarks/gpu_check.py: the training step, and whether bf16 is safe.

step: imagenet128 (ch 96, shared + hier + ortho; --tiny: digits32 at 32 px) built by
benchmarks/train_step.build_step as the training loop builds it, bf16 autocast + channels_last on
CUDA, at per-GPU batches 64/128/256 (tiny 8/16) until one does not fit: real images seen by D per
second, model FLOPs of one iteration (torch.utils.flop_counter), MFU against 989 TFLOP/s (H100 SXM
dense bf16, nominal), peak memory and torch.profiler's top 15 ops.

bf16: the same weights' G and D outputs under bf16 autocast against fp32, then N iterations of
digits32 on the embedded digits from one seed in bf16 and in fp32, and a second fp32 seed for the
run-to-run noise the bf16-fp32 difference is compared with.
"""

from __future__ import annotations

import gc
import time

import torch
import torch.nn.functional as F
from gpu_check_common import Recorder, part_main, peak_memory_mb, sync  # benchmarks/, on sys.path
from train_step import build_step, step_flops

PEAK_TFLOPS = 989.0  # H100 SXM bf16 dense, nominal (the figure; the PCIe card's is 756)
TOLERANCE = 0.05  # bf16 outputs: max |bf16 - fp32| within 5% of max |fp32| (8 mantissa bits, ~20 layers)


def _overrides(device: torch.device) -> dict:
    # bf16 autocast on the GPU as issue 27 asks; on a CPU the preset's "auto" (measured) choice.
    return {"train.channels_last": True, **({"train.precision": "bf16"} if device.type == "cuda" else {})}


def _profile_table(step, device: torch.device, first: int, iterations: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(iterations):
            step.step(first + i, tick=False)
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=60)


def _guarded(rec: Recorder, what: str, fn, *args):
    """fn(*args), or None with a note: a failing FLOP count or profile must not lose the next batch's timing."""
    try:
        return fn(*args)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - reported in the part's notes; the timings stand without it
        rec.note(f"{what} failed: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
        return None


def part_step(rec: Recorder, device: torch.device, args) -> None:
    preset = "digits32" if args.tiny else "imagenet128"
    batches = [8, 16] if args.tiny else [64, 128, 256]
    warmup, iterations, profiled = (1, 2, 1) if args.tiny else (3, 6, 2)
    cuda = device.type == "cuda"
    rec.note(f"preset {preset}, per-GPU batches {batches}, {warmup} warm-up + {iterations} timed iterations "
             f"(2 D steps + 1 G step each, ortho, EMA), step built by benchmarks/train_step.build_step")
    rec.note(f"MFU = model FLOPs per iteration (torch.utils.flop_counter.FlopCounterMode) x iterations/s / "
             f"{PEAK_TFLOPS:.0f} TFLOP/s (H100 SXM bf16 dense, nominal)" if cuda else
             "MFU: not computed on a CPU (no comparable peak); FLOPs are counted all the same")
    rec.note("peak memory: torch.cuda.max_memory_allocated per batch" if cuda else
             "peak memory: this part's process ru_maxrss so far (never decreases)")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 islands (SN, BN stats, heads) as training runs them
        torch.backends.cudnn.allow_tf32 = True
    done = []
    for batch in batches:
        if rec.left() < 15:
            rec.note(f"batch {batch}: not tried, the part's time budget is spent")
            break
        step = None
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            built = time.perf_counter()
            step, images_per_iteration = build_step(preset, batch, device, _overrides(device))
            for i in range(warmup):
                step.step(i + 1, tick=False)
            sync(device)
            rec.say(f"batch {batch}: built and warmed up in {time.perf_counter() - built:.1f} s")
            start = time.perf_counter()
            for i in range(iterations):
                step.step(warmup + i + 1, tick=False)
            sync(device)
            seconds = (time.perf_counter() - start) / iterations
            peak = peak_memory_mb(device)  # of the timed steps, before the counting and profiling passes
            flops = _guarded(rec, f"batch {batch}: FLOP count", step_flops, step)
            row = {"batch": batch, "precision": step.cfg.precision, "channels_last": step.cfg.channels_last,
                   "ms/iteration": seconds * 1000, "real img/s": images_per_iteration / seconds,
                   "TFLOP/iteration": flops / 1e12 if flops else "n/a",
                   "achieved TFLOP/s": flops / seconds / 1e12 if flops else "n/a",
                   "MFU %": flops / seconds / (PEAK_TFLOPS * 1e12) * 100 if cuda and flops else "n/a",
                   "peak MB": peak}
            rec.row(**row)
            done.append(row)
            if rec.left() > 10:
                table = _guarded(rec, f"batch {batch}: profile", _profile_table, step, device,
                                 warmup + iterations + 2, profiled)
                if table:
                    rec.table(f"top 15 ops by self {device.type} time, batch {batch} ({profiled} iterations)", table)
        except torch.cuda.OutOfMemoryError as err:
            rec.row(batch=batch, precision="bf16" if cuda else "", channels_last=True, **{"ms/iteration": "OOM"})
            rec.note(f"batch {batch} does not fit: {str(err).splitlines()[0][:200]}")
            break
        finally:
            del step
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    if done:
        best = max(done, key=lambda r: r["real img/s"])
        rec.set(headline=best)
        rec.note(f"largest fitting batch {done[-1]['batch']}; best {best['real img/s']:.0f} real img/s at batch "
                 f"{best['batch']} (issue 27's targets on an H100: >= 450 img/s, MFU >= 40%)")
    if len(done) < len(batches):
        rec.set(status=f"ok, {len(done)} of {len(batches)} batches measured")


# --------------------------------------------------------------------------------------- bf16


def _errors(ref: torch.Tensor, out: torch.Tensor) -> dict:
    diff = (out.float() - ref.float()).abs()
    scale = ref.float().abs().max().clamp_min(1e-12)
    return {"max abs": float(diff.max()), "max abs / max|fp32|": float(diff.max() / scale),
            "mean rel": float((diff / ref.float().abs().clamp_min(1e-3 * float(scale))).mean())}


@torch.no_grad()
def output_errors(rec: Recorder, device: torch.device, preset: str, batch: int) -> None:
    """G and D of one seed in eval mode (SN's power iteration and BN's running statistics stand
    still, so both passes see the same weights), fp32 against bf16 autocast."""
    from biggan.config import apply_overrides
    from biggan.models import build_models, seeded
    from biggan.presets import get_preset

    cfg = apply_overrides(get_preset(preset), {"model.num_classes": 10 if preset == "digits32" else 1000})
    G, D = build_models(cfg.model, seeded(0))
    for net in (G, D):
        net.to(device=device, memory_format=torch.channels_last).eval()
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(batch, G.dim_z, generator=gen).to(device)
    y = torch.randint(cfg.model.num_classes, (batch,), generator=gen).to(device)
    x_fp32 = G(z, y)
    d_fp32 = D(x_fp32, y)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        x_bf16 = G(z, y)
        d_bf16 = D(x_fp32, y)  # the same input images: D's own error, not G's carried over
    for name, ref, out in (("G images", x_fp32, x_bf16), ("D logits", d_fp32, d_bf16)):
        errors = _errors(ref, out)
        rec.row(check=f"{preset} {name}, batch {batch}", **errors,
                **{"within tolerance": errors["max abs / max|fp32|"] <= TOLERANCE})
    rec.note(f"tolerance: max |bf16 - fp32| <= {TOLERANCE} x max |fp32| (same weights, eval mode)")


def digit_batches(resolution: int, batch: int, seed: int, device: torch.device):
    """sklearn's embedded digits (8x8, 16 grey levels) resized to `resolution`, in [-1, 1], RGB, in an
    order drawn from `seed`: the demo's data without shards, so this part needs no WebDataset."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = (x * 2 - 1).expand(-1, 3, -1, -1).contiguous().to(device)
    y = torch.tensor(digits.target, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=gen).to(device)
        for start in range(0, len(x) - batch + 1, batch):
            index = order[start:start + batch]
            yield x[index], y[index]


def loss_curve(rec: Recorder, device: torch.device, precision: str, seed: int, iterations: int,
               until: float) -> list[dict]:
    """loss/D and loss/G of `iterations` digits32 iterations (fewer if time.time() reaches `until`)."""
    from biggan.config import apply_overrides
    from biggan.models import build_models, seeded
    from biggan.presets import get_preset

    step, _ = build_step("digits32", None, device, {"train.precision": precision, "train.channels_last": True})
    if seed != 0:  # build_step draws seed 0: a second seed means other weights, latents and data order
        G, D = build_models(apply_overrides(get_preset("digits32"), {"model.num_classes": 10}).model, seeded(seed))
        step.G.load_state_dict(G.state_dict())
        step.D.load_state_dict(D.state_dict())
        step.latent_rng.manual_seed(seed)
    step.real_batches = digit_batches(32, step.micro_batch, seed, device)
    curve = []
    for i in range(1, iterations + 1):
        if time.time() > until:
            rec.note(f"{precision} seed {seed}: stopped at iteration {i - 1}, the part's time budget is spent")
            break
        metrics = step.step(i, tick=False)
        curve.append({"loss/D": float(metrics["loss/D"]), "loss/G": float(metrics["loss/G"])})
    return curve


def _smooth(values: list[float], window: int) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float64)
    if len(v) < window:
        return v
    return v.unfold(0, window, 1).mean(1)


def part_bf16(rec: Recorder, device: torch.device, args) -> None:
    preset = "digits32" if args.tiny else "imagenet128"
    output_errors(rec, device, preset, 4 if args.tiny else 16)
    iterations = 20 if args.tiny else 200
    runs = {}
    plan = (("bf16", 0), ("fp32", 0), ("fp32", 1))
    for index, (precision, seed) in enumerate(plan):
        started = time.perf_counter()
        # Each run gets an equal share of what is left, so a short budget still gives three curves
        # to compare (over their common length) rather than one whole curve and two empty ones.
        until = time.time() + (rec.left() - 5) / (len(plan) - index)
        runs[(precision, seed)] = loss_curve(rec, device, precision, seed, iterations, until)
        curve = runs[(precision, seed)]
        rec.say(f"digits32 {precision} seed {seed}: {len(curve)} iterations in {time.perf_counter() - started:.1f} s")
    window = max(1, iterations // 10)
    base = runs[("fp32", 0)]
    for key in ("loss/D", "loss/G"):
        for label, other in (("bf16 seed 0 - fp32 seed 0", runs[("bf16", 0)]),
                             ("fp32 seed 1 - fp32 seed 0 (noise)", runs[("fp32", 1)])):
            n = min(len(base), len(other))
            if n == 0:
                continue
            a, b = _smooth([r[key] for r in base[:n]], window), _smooth([r[key] for r in other[:n]], window)
            rec.row(check=f"digits32 {key}: {label}", iterations=n,
                    **{"mean |diff| (smoothed)": float((a - b).abs().mean()),
                       "max |diff| (smoothed)": float((a - b).abs().max()),
                       "iteration 1 |diff|": abs(base[0][key] - other[0][key]),
                       "final (smoothed) fp32 s0": float(a[-1]), "final (smoothed) other": float(b[-1])})
    rec.set(curves={f"{p} seed {s}": c for (p, s), c in runs.items()})
    rec.note(f"curves smoothed over {window} iterations; bf16 is safe where its difference from fp32 (same seed) "
             "is no larger than the difference between two fp32 seeds")


if __name__ == "__main__":
    part_main({"step": part_step, "bf16": part_bf16})
